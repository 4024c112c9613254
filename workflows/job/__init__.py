"""The main job, ``sacmap run SPEC -o OUTDIR``: structures → calculations → energetics → detection → statistics →
samplers → report. Each step writes its outputs as soon as they exist and is skipped on a rerun when current.
"""

from .run import run_job

__all__ = ["run_job"]
