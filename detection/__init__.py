"""sacmap detection: HAADF-STEM image reading, CNN atom detection, multimer splitting, element labelling, simulator.

Modules (``sacmap.detection.…``):

* ``io`` — reading images (TIFF, PNG/JPEG/BMP, dm3/dm4/emd/ser) and their pixel size (nm/px); ``write_tiff``;
* ``detector`` — ``AtomDetector``, the one detector object (model, threshold and pre-processing from the weights'
  metadata, ``detect(image, pixel_nm)``), the named models (``heatmap``, ``paper``, ``bundled``) and ``decode``;
* ``heatmap``, ``heatmap_training`` — the heat-map network (U-Net/CenterNet style), its peak decoder, weights files
  and its training on simulated + real images (one command, see ``data/MODEL_CARD.md``);
* ``preprocess`` — resampling to the training pixel size (0.0293 nm/px) and the whole-image normalisation
  (``to_model_frame``: the one image → model-frame transform of training and inference);
* ``model`` — the paper's 21×21-crop CNN, its exact fully convolutional form, weights files (``save_weights``/
  ``load_weights``), the bundled weights in ``data/`` (see ``data/MODEL_CARD.md``);
* ``localise`` — probability map → atoms (px): components, intensity-peak and GMM multimer splits, merging;
* ``combine`` — the combination's union of the two networks' atoms; ``candidates``, ``verifier``,
  ``verifier_training`` — band-pass candidates for the atoms both networks miss, the verifier that accepts them
  (``data/verifier.json``) and its training (one command, ``data/MODEL_CARD.md``);
* ``refine``, ``gaussfit``, ``split`` — joint 2-D Gaussian refinement (sub-pixel positions, intensity, width,
  uncertainty), its shared fitter and the optional model-order split of merged pairs;
* ``support`` — support/vacuum segmentation and the support area (nm²);
* ``elements``, ``vae`` — unsupervised element labels of detected atoms (VAE latent + Gaussian mixture);
* ``pipeline`` — ``detect_image`` / ``detect_files`` and the ``DetectionResult`` record written as
  :mod:`sacmap.core.records` defines it;
* ``labels`` — reading atom positions from label / detection / truth CSVs (px);
* ``evaluate`` — precision / recall / F1 by one-to-one (Hungarian) matching within a radius (px);
* ``training`` — training crops and loop, hard-negative mining, threshold tuning, ``train_weights``;
* ``simulate``, ``simulate_stats`` — the calibrated HAADF-STEM simulator and its real-vs-simulated statistics;
* ``errors`` — ``DetectionInputError`` (a :class:`sacmap.core.errors.InputError`).

Coordinates: x = column, y = row, px (origin at the centre of the top-left pixel); nm via the pixel size.
Imports only :mod:`sacmap.core` of the rest of sacmap.
"""
