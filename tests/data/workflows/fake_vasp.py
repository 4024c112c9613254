#!/usr/bin/env python3
"""Stand-in VASP executable for the workflow tests (run by custodian's VaspJob in the calculation folder).

1. Checks the inputs it finds against ``$FAKE_VASP_EXPECT`` (JSON: ``{"relax": {"incar": {...}, "absent":
   [...]}, "static": {...}, "per_formula": {POSCAR comment: {...}}, "kpoints": [n1, n2, n3]}``, the step told
   by NSW = 0 for static): INCAR tags and values, a Gamma-centred
   KPOINTS grid, POSCAR species matching the POTCAR.spec symbols one to one. Any mismatch: message on stderr,
   exit status 3, no outputs.
2. If ``$FAKE_VASP_ERROR`` names a recorded VASP log, this is the step ``$FAKE_VASP_ERROR_STEP`` (default
   relax) and this folder has not failed yet, prints that log (as VASP
   would on stdout, i.e. into custodian's vasp.out; ``std_err.*`` files go to stderr) and stops without results.
3. Otherwise copies the recorded real outputs of ``$FAKE_VASP_OUTPUTS`` (vasprun.xml, OUTCAR, OSZICAR, CONTCAR).
   The first ``$FAKE_VASP_UNCONVERGED_RELAX`` relaxations (counted over all folders) end unconverged: the
   recording with NSW lowered to its 28 ionic steps (pymatgen then reads ``converged_ionic = False``); with
   ``$FAKE_VASP_WAIT_STOPCAR`` set they first wait (up to 20 s) for the STOPCAR of custodian's WalltimeHandler,
   as VASP stops at the next ionic step when one appears.

Every call appends one JSON line (folder, step, INCAR, first POSCAR position) to ``$FAKE_VASP_LOG``.
"""

import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path


def read_incar(path="INCAR"):
    tags = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#")[0].split("!")[0].strip()
        if "=" not in line:
            continue
        key, _, val = line.partition("=")
        tags[key.strip().upper()] = val.strip()
    return tags


def same(found: str, want) -> bool:
    if isinstance(want, bool):
        return found.strip(".").upper() in (("TRUE", "T") if want else ("FALSE", "F"))
    if isinstance(want, (int, float)):
        try:
            return abs(float(found) - float(want)) <= 1e-9 * max(1.0, abs(float(want)))
        except ValueError:
            return False
    if isinstance(want, list):
        vals = []
        for tok in found.split():  # VASP's "n*value" shorthand
            n, star, v = tok.partition("*")
            vals += [v] * int(n) if star else [tok]
        return len(vals) == len(want) and all(same(v, w) for v, w in zip(vals, want))
    return found == str(want)


def check(expect: dict) -> list[str]:
    problems = []
    incar = read_incar()
    step = "static" if int(float(incar.get("NSW", "0"))) == 0 else "relax"
    poscar = Path("POSCAR").read_text().splitlines()
    rules = [expect.get(step, {}), expect.get("per_formula", {}).get(poscar[0].strip(), {})]
    if Path(".fake_vasp_errored").exists():
        rules = []  # a rerun after an error: custodian has corrected the INCAR on purpose
    for rule in rules:
        for key, want in rule.get("incar", {}).items():
            if key not in incar:
                problems.append(f"INCAR lacks {key} (want {want!r})")
            elif not same(incar[key], want):
                problems.append(f"INCAR {key} = {incar[key]!r}, want {want!r}")
        for key in rule.get("absent", []):
            if key in incar:
                problems.append(f"INCAR has {key} = {incar[key]!r}, should be absent")
    kp = Path("KPOINTS").read_text().splitlines()
    if len(kp) < 4 or not kp[2].strip().lower().startswith("g"):
        problems.append(f"KPOINTS is not Gamma-centred automatic: {kp[:4]}")
    elif [int(x) for x in kp[3].split()] != expect["kpoints"]:
        problems.append(f"KPOINTS grid {kp[3].split()} != {expect['kpoints']}")
    species = poscar[5].split()
    spec = Path("POTCAR.spec").read_text().split()
    if [s.split("_")[0] for s in spec] != species:
        problems.append(f"POTCAR.spec {spec} does not match POSCAR species {species}")
    counts = [int(x) for x in poscar[6].split()]
    if len(counts) != len(species):
        problems.append("POSCAR species/count lines differ in length")
    return problems, step, incar


def main() -> int:
    expect = json.loads(Path(os.environ["FAKE_VASP_EXPECT"]).read_text())
    problems, step, incar = check(expect)
    log = os.environ.get("FAKE_VASP_LOG")
    if log:
        with open(log, "a") as fh:
            first = Path("POSCAR").read_text().splitlines()[8].split()[:3]
            fh.write(json.dumps({"dir": os.getcwd(), "step": step, "incar": incar, "problems": problems,
                                 "first_position": [float(x) for x in first]}) + "\n")
    if problems:
        print("fake_vasp: input check failed: " + "; ".join(problems), file=sys.stderr)
        return 3
    error = os.environ.get("FAKE_VASP_ERROR")
    if error and step == os.environ.get("FAKE_VASP_ERROR_STEP", "relax") and not Path(".fake_vasp_errored").exists():
        Path(".fake_vasp_errored").write_text(error)
        text = Path(error).read_text()
        if Path(error).name.startswith("std_err"):
            sys.stderr.write(text)
        else:
            sys.stdout.write(text)
        shutil.copy("POSCAR", "CONTCAR")  # VASP writes CONTCAR as it goes
        src = Path(error).parent / "OSZICAR"
        if src.exists():
            shutil.copy(src, "OSZICAR")
        return 0
    out = Path(os.environ["FAKE_VASP_OUTPUTS"])
    unconverged = False
    n_stop = int(os.environ.get("FAKE_VASP_UNCONVERGED_RELAX", "0"))
    if step == "relax" and n_stop and log:
        counter = Path(log).with_suffix(".unconverged")
        done = int(counter.read_text()) if counter.exists() else 0
        if done < n_stop:
            counter.write_text(str(done + 1))
            unconverged = True
            if os.environ.get("FAKE_VASP_WAIT_STOPCAR"):
                t0 = time.time()
                while not Path("STOPCAR").exists() and time.time() - t0 < 20:
                    time.sleep(0.05)
    for name in ("vasprun.xml", "OUTCAR", "OSZICAR", "CONTCAR"):
        if (out / name).exists():
            shutil.copy(out / name, name)
        elif (out / f"{name}.gz").exists():
            with gzip.open(out / f"{name}.gz", "rb") as src, open(name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if unconverged:  # the run stopped at NSW (or at the STOPCAR) after its 28 ionic steps
        text = Path("vasprun.xml").read_text().replace('name="NSW">    99<', 'name="NSW">    28<')
        Path("vasprun.xml").write_text(text)
        print(" running on    1 total cores")
        return 0
    print(" running on    1 total cores\n reached required accuracy - stopping structural energy minimisation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
