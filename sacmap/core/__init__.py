"""The small shared core every sacmap package may import; it imports nothing else of sacmap.

* :mod:`.errors` — :class:`InputError`, the base of every package's bad-input error (the CLI: one line, exit 2),
  and the exit statuses (2 bad input, 3 a batch with failed inputs);
* :mod:`.batch` — :class:`BatchReport`: batches that go on past bad inputs and write ``batch_summary.csv``;
* :mod:`.atomic` — the one atomic writer (text, bytes, JSON, CSV, figures), which never replaces a protected input;
* :mod:`.jsonable` — JSON sanitising of numpy / pandas / path values;
* :mod:`.records` — the detection record: CSV columns, JSON keys, image suffixes;
* :mod:`.constants` — shared physical and chemical constants;
* :mod:`.validation` — the typed validation layer specs and settings parse into;
* :mod:`.yamlfile` — safe YAML mapping reader (and the UTF-8 text reader of user files);
* :mod:`.resources` — where the bundled inputs (presets, example specs, images) live.
"""
