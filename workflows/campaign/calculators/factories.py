"""Factories building ASE calculators from settings dicts (heavy imports inside each)."""

from __future__ import annotations

import os
import warnings

from sacmap.workflows.errors import WorkflowInputError


def _threads() -> int:
    """CPU threads for torch and D3 (``$SACMAP_TORCH_THREADS``, default 1: on shared or busy machines more
    threads oversubscribe the cores and run several times slower; raise it on a dedicated node)."""
    return max(1, int(os.environ.get("SACMAP_TORCH_THREADS", "1")))


def _torch_threads() -> None:
    import torch

    torch.set_num_threads(_threads())


def _d3_pbe_zero():
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads()))  # simple-dftd3 is OpenMP-parallel
    from dftd3.ase import DFTD3

    return DFTD3(method="PBE", damping="d3zero")


def _missing(pkg: str, extra: str) -> WorkflowInputError:
    return WorkflowInputError(f"calculator needs the Python package {pkg!r}: pip install 'sacmap[{extra}]'")


def _chgnet(settings: dict):
    _torch_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        model = CHGNet.load(model_name=settings.get("model", "0.3.0"), verbose=False)

    class QuietCHGNetCalculator(CHGNetCalculator):
        """CHGNet emits a harmless torch UserWarning on every call; silence it."""

        def calculate(self, *args, **kwargs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return super().calculate(*args, **kwargs)

    return QuietCHGNetCalculator(model=model, use_device="cpu", on_isolated_atoms="ignore")


def chgnet_plain(settings: dict):
    """CHGNet alone (no dispersion)."""
    return _chgnet(settings)


def chgnet_d3(settings: dict):
    """CHGNet + Grimme D3 (zero damping, PBE parameters) in an ASE SumCalculator."""
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([_chgnet(settings), _d3_pbe_zero()])


def sevennet_d3(settings: dict):
    """SevenNet (``7net-0`` by default; weights ship in the wheel) + D3 zero damping."""
    try:
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise _missing("sevenn", "sevennet") from exc
    from ase.calculators.mixing import SumCalculator

    _torch_threads()
    return SumCalculator([SevenNetCalculator(settings.get("model", "7net-0"), device="cpu"), _d3_pbe_zero()])


def tblite_gfn2(settings: dict):
    """GFN2-xTB through tblite's ASE calculator (dispersion D4 built in; gives charges)."""
    try:
        from tblite.ase import TBLite
    except ImportError as exc:
        raise _missing("tblite", "xtb") from exc
    return TBLite(method=settings.get("method", "GFN2-xTB"), verbosity=0)


def gpaw_lcao(settings: dict):
    """GPAW in LCAO mode (dzp basis, PBE) + D3; needs a working GPAW install (see docs/workflows.md)."""
    try:
        from gpaw import GPAW
    except ImportError as exc:
        raise WorkflowInputError("calculator gpaw needs GPAW installed (see docs/workflows.md)") from exc
    from ase.calculators.mixing import SumCalculator

    dft = GPAW(mode=settings.get("mode", "lcao"), basis=settings.get("basis", "dzp"), xc=settings.get("xc", "PBE"),
               kpts=tuple(settings.get("kpts", (2, 2, 1))), txt="gpaw.txt")
    return SumCalculator([dft, _d3_pbe_zero()])


def emt(settings: dict):
    """ASE's EMT (toy potential; for exercising the workflow machinery quickly)."""
    from ase.calculators.emt import EMT

    return EMT()
