"""Energetics of N-doped graphene sites and their metal centres from tidy records (eV, Å, e).

Pipeline: :func:`annotate` (recognise every structure, check usability) → :func:`interaction_energies`
(paper eqs. 1–5), :func:`dimer_energies` (Figure 4a), :func:`site_site_potential` (Figure 4b/c),
:func:`bader_descriptor` (Figure 4c) → :func:`compute_energetics` (all of it, CSV files and figures).

Equations (E = total energy sigma→0 of a relaxed cell; all cells of one equation share the support cell and the
settings; negative = favourable):

* E_int (paper eqs. 1–5), at each placement of two sites (same ``pair_geometry``)::

      E_int = E(M_A/s1 - M_B/s2) + E(s1 - s2) - E(M_A/s1 - s2) - E(s1 - M_B/s2)

  eq. 1: s1 = s2 = 4N, A = B (``sq``); eq. 2: 3N, A = B (``tr``); eq. 3: s1 = 3N, s2 = 4N, A = B (``mix``);
  eqs. 4/5: 3N–4N with A ≠ B, ``AB`` when the alphabetically first metal sits on 3N (eq. 4), ``BA`` otherwise
  (eq. 5). Same-kind pairs with two metals use the same form (for A = B the two singly occupied cells are one
  configuration, giving the paper's ``- 2 E(M/4N - 4N)``); 6N–6N and hetero same-kind pairs are labelled
  ``hex`` / ``sq-AB`` etc. (extensions, not in the paper).
* Dimer formation in one site ``s`` (Figure 4a), per dimer::

      from the gas phase:        E_dim,gas = E(M2/s) - E(s) - 2 E(M, gas)
      from two isolated centres: E_dim,iso = E(M2/s) + E(s) - 2 E(M/s)

  (the second moves a metal from one occupied site into another, leaving one site empty). Also reported:
  ``E_ads = E(M/s) - E(s) - E(M, gas)`` and, if the gas dimer exists, ``E(M2/s) - E(s) - E(M2, gas)``.
* Site–site potential (Figure 4b): E(s1 - s2 at d) - E(s1 - s2 at the largest separation), per site kinds.
* Bader descriptor ⟨B⟩: mean Bader charge (e, ACF.dat CHARGE column = electrons) of the N atoms of the seed
  site minus the mean charge of N in a reference phase (a pure-N record, or a value given by the user). For
  mixed pairs the seed is the first site (3N in 3N–4N); for two sites of one kind geometry cannot tell which
  was the seed, so both sites' N atoms are averaged.

Missing partners are listed (never guessed); records with problems or inconsistent settings (functional,
IVDW, ENCUT, U on a shared element, energy kind) are never combined, and each exclusion names the folder.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from sacmap.analysis.energetics.recognition import recognise
from sacmap.analysis.errors import AnalysisInputError
from sacmap.core.atomic import atomic_write, write_csv
from sacmap.core.constants import NON_METALS
from sacmap.core.redact import redact_url

log = logging.getLogger(__name__)

RECOGNISED_COLUMNS = [
    "id", "kind", "site_kinds", "separation_A", "shares_NN_bond", "n_C_between", "occupants", "metals",
    "pair_id", "swap_symmetric", "pair_geometry", "n_sheet_points", "sites", "recognition_error", "phase_note",
]  # fmt: skip
#: recognised kinds that are never a term of any equation (metal bulk/slab cells: not gas references)
APART_KINDS = ("bulk", "slab", "wire")
EQUATION_LABELS = {("4N", True): ("1", "sq"), ("3N", True): ("2", "tr"), ("6N", True): ("1/2 form", "hex")}


# ---------------------------------------------------------------------------------------------- helpers
def _u_map(ldau_u: str) -> dict[str, float]:
    out = {}
    for part in str(ldau_u or "").split(","):
        if ":" in part:
            el, u = part.split(":", 1)
            try:
                out[el.strip()] = float(u)
            except ValueError:
                out[el.strip()] = float("nan")
    return out


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def settings_label(row) -> str:
    """Human-readable label of the settings that must agree inside one comparison (the settings record:
    functional, dispersion, ENCUT, U, PREC, smearing, POTCAR set; + the settings hash of database rows)."""
    enc = row.get("encut_eV", float("nan"))
    enc_s = "?" if _nan(enc) else f"{float(enc):g}"
    u = ",".join(f"{el}:{v:g}" for el, v in _u_map(row.get("ldau_u")).items() if v != 0) or "none"
    disp = row.get("dispersion") or f"IVDW={row.get('ivdw', 0)}"
    parts = [row.get("functional") or "?", disp, f"ENCUT={enc_s}", f"U={u}"]
    for key, name in (("prec", "PREC"), ("smearing", ""), ("potcar", "POTCAR")):
        val = row.get(key)
        if isinstance(val, str) and val:
            parts.append(f"{name}={val}" if name else val)
    sid = row.get("settings_id") or ""
    if sid:
        parts.append(sid)
    return "|".join(parts)


def _potcars(label) -> dict[str, str]:
    out = {}
    for part in str(label or "").split(","):
        if ":" in part:
            el, name = part.split(":", 1)
            out[el] = name
    return out


def incompatibility(a, b) -> str:
    """Why records ``a`` and ``b`` must not be combined ('' when they may): they differ in functional,
    dispersion (``unknown`` differs from any known one), ENCUT, U of an element both contain, PREC, smearing,
    the POTCAR of an element both contain, settings hash or energy kind. PREC, smearing and POTCAR are compared
    where both records know them."""
    reasons = []
    if (a.get("functional") or "") != (b.get("functional") or ""):
        reasons.append(f"functional {a.get('functional')!r} vs {b.get('functional')!r}")
    da, db = a.get("dispersion") or "", b.get("dispersion") or ""
    if da and db:
        if da != db:
            reasons.append(f"dispersion {da} vs {db}")
    elif int(a.get("ivdw") or 0) != int(b.get("ivdw") or 0):
        reasons.append(f"IVDW {a.get('ivdw')} vs {b.get('ivdw')}")
    ea, eb = a.get("encut_eV"), b.get("encut_eV")
    na = ea is None or math.isnan(float(ea))
    nb = eb is None or math.isnan(float(eb))
    if na != nb or (not na and abs(float(ea) - float(eb)) > 1e-6):
        reasons.append(f"ENCUT {ea} vs {eb}")
    ua, ub = _u_map(a.get("ldau_u")), _u_map(b.get("ldau_u"))
    shared = set(str(a.get("formula_elements", "")).split(",")) & set(str(b.get("formula_elements", "")).split(","))
    shared -= {""}
    for el in sorted(shared):
        if abs(ua.get(el, 0.0) - ub.get(el, 0.0)) > 1e-9:
            reasons.append(f"U({el}) {ua.get(el, 0.0):g} vs {ub.get(el, 0.0):g}")
    for key, name in (("prec", "PREC"), ("smearing", "smearing")):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, str) and isinstance(vb, str) and va and vb and va != vb:
            reasons.append(f"{name} {va} vs {vb}")
    pa, pb = _potcars(a.get("potcar")), _potcars(b.get("potcar"))
    for el in sorted(set(pa) & set(pb)):
        if pa[el] != pb[el]:
            reasons.append(f"POTCAR({el}) {pa[el]} vs {pb[el]}")
    sa, sb = a.get("settings_id") or "", b.get("settings_id") or ""
    if sa and sb and sa != sb:
        reasons.append(f"settings hash {sa} vs {sb}")
    if (a.get("energy_kind") or "") != (b.get("energy_kind") or ""):
        reasons.append(f"energy kind {a.get('energy_kind')} vs {b.get('energy_kind')}")
    return "; ".join(reasons)


# ------------------------------------------------------------------------------------------------- spin
SPIN_CONVENTION = ("the paper's convention: single metal atoms (one metal atom in the cell, gas atoms) "
                   "spin-polarised (ISPIN 2), all other cells ISPIN 1")


def convention_ispin(row) -> int:
    """ISPIN the paper's convention gives a cell: 2 when it holds exactly one metal atom (a single atom on a site,
    a gas atom), else 1."""
    at = row.get("atoms")
    if at is None:
        return 1
    n_metal = sum(1 for sym in at.get_chemical_symbols() if sym not in NON_METALS)
    return 2 if n_metal == 1 else 1


def _spin_of(row) -> tuple[int, float]:
    ispin = row.get("ispin")
    ispin = int(ispin) if ispin is not None and not _nan(ispin) else 1
    mag = row.get("magmom")
    return ispin, (float(mag) if mag is not None and not _nan(mag) else float("nan"))


def spin_columns(terms: dict) -> dict:
    """``ispin_<role>``, ``magmom_<role>_muB`` for every term of one equation (role → record or None), plus
    ``spin_note``: '' when all terms have one ISPIN, else which differ and whether that is the paper's
    convention (:data:`SPIN_CONVENTION`)."""
    out, seen, deviates = {}, {}, []
    for role, r in terms.items():
        if r is None:
            out[f"ispin_{role}"], out[f"magmom_{role}_muB"] = np.nan, np.nan
            continue
        ispin, mag = _spin_of(r)
        out[f"ispin_{role}"], out[f"magmom_{role}_muB"] = ispin, mag
        seen[role] = ispin
        if ispin != convention_ispin(r):
            deviates.append(role)
    note = ""
    if len(set(seen.values())) > 1:
        note = "terms differ in spin treatment (" + ", ".join(f"{k} ISPIN {v}" for k, v in seen.items()) + "); "
        note += ("as in " if not deviates else f"{', '.join(deviates)} deviate(s) from ") + SPIN_CONVENTION
    elif deviates and seen:
        note = f"{', '.join(deviates)}: ISPIN differs from {SPIN_CONVENTION}"
    out["spin_note"] = note
    return out


# --------------------------------------------------------------------------------------------- annotate
def annotate(records: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """Copy of ``records`` with recognition columns (:data:`RECOGNISED_COLUMNS`) and ``settings``.

    Structures that cannot be recognised keep ``kind = ""`` and get ``recognition_error``; they are not used.
    """
    if not isinstance(records, pd.DataFrame):
        raise AnalysisInputError("records must be a pandas DataFrame (see sacmap.analysis.energetics.readers.load_records)")
    needed = {"atoms", "energy_eV", "usable", "calc_dir"}
    if missing := needed - set(records.columns):
        raise AnalysisInputError(f"records lack columns {sorted(missing)}")
    df = records.copy().reset_index(drop=True)
    it = range(len(df))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="recognising", unit="structure")
    rows = []
    for i in it:
        at = df.at[i, "atoms"]
        r = dict.fromkeys(RECOGNISED_COLUMNS)
        r.update(id="", kind="", site_kinds="", separation_A=np.nan, shares_NN_bond=False, n_C_between=-1,
                 occupants="", metals="", pair_id="", swap_symmetric=False, pair_geometry="", n_sheet_points=0,
                 sites=[], recognition_error="", phase_note="")
        if at is None:
            r["recognition_error"] = "no structure"
        else:
            try:
                res = recognise(at)
                r.update({k: res[k] for k in RECOGNISED_COLUMNS if k in res})
            except AnalysisInputError as exc:
                r["recognition_error"] = f"{df.at[i, 'calc_dir']}: not recognised ({exc})"
        rows.append(r)
    rec = pd.DataFrame(rows, columns=RECOGNISED_COLUMNS)
    for c in RECOGNISED_COLUMNS:
        df[c] = rec[c].values
    df["recognised"] = df["kind"] != ""
    df["formula_elements"] = [
        ",".join(sorted(set(a.get_chemical_symbols()))) if a is not None else "" for a in df["atoms"]
    ]
    for col, default in (("functional", ""), ("ivdw", 0), ("encut_eV", np.nan), ("ldau_u", ""),
                         ("energy_kind", ""), ("settings_id", ""), ("dispersion", ""), ("prec", ""),
                         ("smearing", ""), ("potcar", ""), ("ispin", 1), ("magmom", np.nan),
                         ("notes", "")):  # fmt: skip
        if col not in df:
            df[col] = default
    df["settings"] = [settings_label(r) for _, r in df.iterrows()]
    for _, r in df[~df["recognised"]].iterrows():
        log.warning("%s", r["recognition_error"])
    return df


def _usable(df: pd.DataFrame) -> pd.DataFrame:
    ok = df["usable"].astype(bool) & df["recognised"].astype(bool) & np.isfinite(df["energy_eV"].astype(float))
    return df[ok & ~df["kind"].isin(APART_KINDS)]


#: what makes two records the same calculation (same structure, same settings)
DUPLICATE_KEYS = ["kind", "id", "occupants", "pair_geometry", "n_sheet_points", "settings"]


def duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Usable records that repeat one calculation (same kind, id, occupants, placement, support and settings):
    every equation uses the lowest energy of such a group; the others are listed here (never silently dropped),
    with their energy above the kept one (eV)."""
    use = _usable(df)
    rows = []
    for _, g in use.groupby(DUPLICATE_KEYS, dropna=False):
        if len(g) < 2:
            continue
        g = g.sort_values("energy_eV")
        kept = g.iloc[0]
        for _, r in g.iloc[1:].iterrows():
            rows.append({"kind": kept["kind"], "id": kept["id"], "occupants": kept["occupants"],
                         "settings": kept["settings"], "kept_dir": kept["calc_dir"],
                         "kept_energy_eV": float(kept["energy_eV"]), "dropped_dir": r["calc_dir"],
                         "dropped_energy_eV": float(r["energy_eV"]),
                         "delta_eV": float(r["energy_eV"]) - float(kept["energy_eV"]),
                         "ispin_kept": _spin_of(kept)[0], "ispin_dropped": _spin_of(r)[0]})
    cols = ["kind", "id", "occupants", "settings", "kept_dir", "kept_energy_eV", "dropped_dir",
            "dropped_energy_eV", "delta_eV", "ispin_kept", "ispin_dropped"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------- matching
def _pick(cands: pd.DataFrame, target) -> tuple[pd.Series | None, str]:
    """Lowest-energy candidate compatible with ``target`` (None + reason when none is)."""
    if cands.empty:
        return None, "not found"
    reasons = []
    ok = []
    for _, c in cands.iterrows():
        why = incompatibility(target, c)
        if why:
            reasons.append(f"{c['calc_dir']} ({why})")
        else:
            ok.append(c)
    if not ok:
        return None, "only with inconsistent settings: " + "; ".join(reasons)
    best = min(ok, key=lambda c: float(c["energy_eV"]))
    return best, ""


def _occ(metal: str, kind: str) -> str:
    return f"{metal}/{kind}" if metal else kind


def _single_occupants(t, first: bool) -> str:
    """Occupants of the partner of pair ``t`` holding only the metal of its first (or second) site.

    The recogniser lists the builder's seed site first; for two sites of one kind that the sheet's symmetry
    exchanges (``swap_symmetric``) or that no builder placement matched, the occupied site is listed first.
    """
    (k1, m1), (k2, m2) = [(s["kind"], s["metals"][0] if s["metals"] else "") for s in t["sites"]]
    if first:
        return f"{m1}/{k1}-{k2}"
    if k1 == k2 and (bool(t["swap_symmetric"]) or not t["pair_id"]):
        return f"{m2}/{k2}-{k1}"
    return f"{k1}-{m2}/{k2}"


def interaction_energies(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """E_int (eV) for every doubly occupied pair with all partners; and the table of missing partners.

    ``df`` must come from :func:`annotate`. Returns ``(e_int, missing)``.
    """
    use = _usable(df)
    targets = use[(use["kind"] == "metal_pair") & (use["metals"].str.count(",") == 1)]
    # the same calculation found twice (e.g. in a tree and in the database) gives one row: lowest energy kept
    targets = targets.sort_values("energy_eV").drop_duplicates(["pair_geometry", "occupants", "settings"])
    pairs = use[use["kind"].isin(["bare_pair", "metal_single", "metal_pair"])]
    rows, missing = [], []
    for _, t in targets.iterrows():
        sites = t["sites"]
        (k1, m1), (k2, m2) = [(s["kind"], s["metals"][0]) for s in sites]
        same_geom = pairs[pairs["pair_geometry"] == t["pair_geometry"]]
        need = {"bare": "", "first_only": _single_occupants(t, True), "second_only": _single_occupants(t, False)}
        found, why = {}, {}
        for role, occ in need.items():
            cands = same_geom[same_geom["occupants"] == occ]
            found[role], why[role] = _pick(cands, t)
        a_metal, b_metal = sorted({m1, m2}) if m1 != m2 else (m1, m1)
        if k1 == k2:
            eq, label = EQUATION_LABELS[(k1, True)]
            if m1 != m2:
                label = f"{label}-AB"
        else:
            if m1 == m2:
                eq, label = ("3", "mix") if (k1, k2) == ("3N", "4N") else ("3 form", "mix")
            else:
                ab = m1 == a_metal  # metal A (alphabetically first) on the first site (3N)
                eq, label = (("4", "mix-AB") if ab else ("5", "mix-BA")) if (k1, k2) == ("3N", "4N") else (
                    ("4/5 form", "mix-AB" if ab else "mix-BA"))
        base = dict(
            equation=eq, label=label, site_kinds=t["site_kinds"], occupants=t["occupants"], metal_A=a_metal,
            metal_B=b_metal, separation_A=t["separation_A"], shares_NN_bond=t["shares_NN_bond"],
            n_C_between=t["n_C_between"], settings=t["settings"], calc_dir=t["calc_dir"],
        )  # fmt: skip
        lacking = [r for r in need if found[r] is None]
        if lacking:
            lacking = [r for k, r in enumerate(lacking) if need[r] not in [need[q] for q in lacking[:k]]]
            for r in lacking:
                missing.append({**base, "needed": need[r] or f"bare {t['site_kinds']}", "reason": why[r]})
                log.info("E_int %s: %s lacks partner %s (%s)", label, t["calc_dir"], need[r] or "bare", why[r])
            continue
        e_both, e_bare = float(t["energy_eV"]), float(found["bare"]["energy_eV"])
        e_1, e_2 = float(found["first_only"]["energy_eV"]), float(found["second_only"]["energy_eV"])
        spin = spin_columns({"both": t, "bare": found["bare"], "first_only": found["first_only"],
                             "second_only": found["second_only"]})
        rows.append({
            **base, "E_int_eV": e_both + e_bare - e_1 - e_2, "E_both_eV": e_both, "E_bare_eV": e_bare,
            "E_first_only_eV": e_1, "E_second_only_eV": e_2, **spin, "bare_dir": found["bare"]["calc_dir"],
            "first_only_dir": found["first_only"]["calc_dir"], "second_only_dir": found["second_only"]["calc_dir"],
        })  # fmt: skip
    spin_cols = [f"{p}_{r}{u}" for r in ("both", "bare", "first_only", "second_only")
                 for p, u in (("ispin", ""), ("magmom", "_muB"))]
    cols_e = ["equation", "label", "site_kinds", "occupants", "metal_A", "metal_B", "separation_A",
              "shares_NN_bond", "n_C_between", "E_int_eV", "E_both_eV", "E_bare_eV", "E_first_only_eV",
              "E_second_only_eV", *spin_cols, "spin_note", "settings", "calc_dir", "bare_dir", "first_only_dir",
              "second_only_dir"]
    out = pd.DataFrame(rows, columns=cols_e)
    if len(out):
        out = out.sort_values(["label", "occupants", "separation_A"]).reset_index(drop=True)
    miss = pd.DataFrame(missing, columns=[*[c for c in cols_e if c in ("equation", "label", "site_kinds",
                                           "occupants", "separation_A", "settings", "calc_dir")], "needed",
                                          "reason"])  # fmt: skip
    return out, miss


def dimer_energies(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dimer formation energies (eV per dimer) per metal and site kind; and missing references.

    See the module docstring for the equations. The site cells must share the support (same lattice size).
    """
    use = _usable(df)
    dimers = use[use["kind"] == "dimer"].sort_values("energy_eV").drop_duplicates(
        ["id", "n_sheet_points", "settings"])
    rows, missing = [], []
    for _, t in dimers.iterrows():
        s = t["sites"][0]
        kind = s["kind"]
        metals = sorted(set(s["metals"]))
        base = dict(site_kind=kind, metal=",".join(metals), occupants=t["occupants"], settings=t["settings"],
                    calc_dir=t["calc_dir"])
        if len(metals) != 1:
            missing.append({**base, "needed": "-", "reason": "hetero-nuclear dimer: no formation equation"})
            continue
        m = metals[0]
        same_support = use[use["n_sheet_points"] == t["n_sheet_points"]]
        refs = {
            "site": (same_support[(same_support["kind"] == "single_site") & (same_support["site_kinds"] == kind)],
                     kind),
            "single": (same_support[(same_support["kind"] == "metal_single")
                                    & (same_support["occupants"] == f"{m}/{kind}")], f"{m}/{kind}"),
            "gas_atom": (use[(use["kind"] == "gas_atom") & (use["occupants"] == m)], f"gas {m}"),
            "gas_dimer": (use[(use["kind"] == "gas_dimer") & (use["occupants"] == f"{m}2")], f"gas {m}2"),
        }  # fmt: skip
        got = {}
        for role, (cands, label) in refs.items():
            got[role], why = _pick(cands, t)
            if got[role] is None and role != "gas_dimer":
                missing.append({**base, "needed": label, "reason": why})
        e = float(t["energy_eV"])
        E = {k: (float(v["energy_eV"]) if v is not None else np.nan) for k, v in got.items()}
        spin = spin_columns({"dimer": t, "site": got["site"], "single": got["single"], "gas_atom": got["gas_atom"],
                             "gas_dimer": got["gas_dimer"]})
        rows.append({
            **spin,
            **base,
            "E_dimer_from_gas_eV": e - E["site"] - 2 * E["gas_atom"],
            "E_dimer_from_isolated_eV": e + E["site"] - 2 * E["single"],
            "E_dimer_from_gas_dimer_eV": e - E["site"] - E["gas_dimer"],
            "E_ads_single_eV": E["single"] - E["site"] - E["gas_atom"],
            "E_dimer_eV": e, "E_site_eV": E["site"], "E_single_eV": E["single"], "E_gas_atom_eV": E["gas_atom"],
            "E_gas_dimer_eV": E["gas_dimer"],
            **{f"{k}_dir": (v["calc_dir"] if v is not None else "") for k, v in got.items()},
        })  # fmt: skip
    cols = ["site_kind", "metal", "occupants", "E_dimer_from_gas_eV", "E_dimer_from_isolated_eV",
            "E_dimer_from_gas_dimer_eV", "E_ads_single_eV", "E_dimer_eV", "E_site_eV", "E_single_eV",
            "E_gas_atom_eV", "E_gas_dimer_eV",
            *[f"{p}_{r}{u}" for r in ("dimer", "site", "single", "gas_atom", "gas_dimer")
              for p, u in (("ispin", ""), ("magmom", "_muB"))], "spin_note",
            "settings", "calc_dir", "site_dir", "single_dir", "gas_atom_dir", "gas_dimer_dir"]
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        out = out.sort_values(["site_kind", "metal"]).reset_index(drop=True)
    return out, pd.DataFrame(missing, columns=["site_kind", "metal", "occupants", "settings", "calc_dir",
                                               "needed", "reason"])


def site_site_potential(df: pd.DataFrame) -> pd.DataFrame:
    """Bare two-site energies relative to the furthest pair of the same site kinds and settings (eV).

    Columns: ``site_kinds, separation_A, energy_eV, shares_NN_bond, n_C_between`` (the sampler's input, see
    docs/contracts.md) plus ``total_energy_eV, settings, n_sheet_points, pair_geometry, calc_dir``. Duplicate
    calculations of one placement keep the lowest energy.
    """
    use = _usable(df)
    bare = use[use["kind"] == "bare_pair"]
    parts = []
    for (kinds, settings, npts), g in bare.groupby(["site_kinds", "settings", "n_sheet_points"]):
        g = g.sort_values("energy_eV").drop_duplicates("pair_geometry", keep="first")
        ref = g.sort_values(["separation_A", "energy_eV"], ascending=[False, True]).iloc[0]
        parts.append(pd.DataFrame({
            "site_kinds": kinds, "separation_A": g["separation_A"].astype(float),
            "energy_eV": g["energy_eV"].astype(float) - float(ref["energy_eV"]),
            "shares_NN_bond": g["shares_NN_bond"].astype(bool), "n_C_between": g["n_C_between"].astype(int),
            "total_energy_eV": g["energy_eV"].astype(float), "settings": settings, "n_sheet_points": npts,
            "pair_geometry": g["pair_geometry"], "calc_dir": g["calc_dir"], "reference_dir": ref["calc_dir"],
        }))  # fmt: skip
    cols = ["site_kinds", "separation_A", "energy_eV", "shares_NN_bond", "n_C_between", "total_energy_eV",
            "settings", "n_sheet_points", "pair_geometry", "calc_dir", "reference_dir"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    return out.sort_values(["settings", "site_kinds", "separation_A"]).reset_index(drop=True)


def bader_descriptor(df: pd.DataFrame, n_reference_charge_e: float | None = None) -> pd.DataFrame:
    """⟨B⟩ per bare pair with Bader charges: mean N charge of the seed site (e) minus the N reference.

    The reference is ``n_reference_charge_e`` if given, else the mean N charge of usable ``reference``
    (pure N) records with charges; without either, ``B_rel_e`` is NaN and ``reference`` says so.
    """
    use = _usable(df)
    ref_src = "given"
    if n_reference_charge_e is None:
        refs = use[(use["kind"] == "reference") & use["charges"].notna()]
        vals = [float(np.mean(c)) for c in refs["charges"]]
        if vals:
            n_reference_charge_e = float(np.mean(vals))
            ref_src = "; ".join(refs["calc_dir"])
        else:
            ref_src = "none (no pure-N record with Bader charges; pass n_reference_charge_e)"
    rows = []
    bare = use[(use["kind"] == "bare_pair") & use["charges"].notna()]
    for _, r in bare.iterrows():
        ch = np.asarray(r["charges"], dtype=float)
        s1, s2 = r["sites"]
        seed = s1["n_indices"] + (s2["n_indices"] if s1["kind"] == s2["kind"] else [])
        b = float(ch[seed].mean())
        rows.append(dict(
            site_kinds=r["site_kinds"], separation_A=r["separation_A"], n_C_between=r["n_C_between"],
            shares_NN_bond=r["shares_NN_bond"], B_mean_e=b,
            B_rel_e=b - n_reference_charge_e if n_reference_charge_e is not None else np.nan,
            seed_sites="both (same kind)" if s1["kind"] == s2["kind"] else s1["kind"], reference=ref_src,
            settings=r["settings"], calc_dir=r["calc_dir"],
        ))  # fmt: skip
    cols = ["site_kinds", "separation_A", "n_C_between", "shares_NN_bond", "B_mean_e", "B_rel_e", "seed_sites",
            "reference", "settings", "calc_dir"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["site_kinds", "separation_A"]).reset_index(drop=True) if len(out) else out


def inconsistent_settings(df: pd.DataFrame) -> list[str]:
    """Warnings for usable records whose settings differ from the most common settings label."""
    use = _usable(df)
    if use.empty:
        return []
    main = use["settings"].value_counts().idxmax()
    ref = use[use["settings"] == main].iloc[0]
    out = []
    for _, r in use[use["settings"] != main].iterrows():
        why = incompatibility(ref, r)
        if why:
            out.append(f"{r['calc_dir']}: settings {r['settings']} differ from the majority {main} ({why}); "
                       "it is only combined with records of matching settings")
    return out


def unusable_reasons(df: pd.DataFrame) -> list[tuple[str, int]]:
    """Why records of an annotated table are not used, most frequent first: ``[(reason, count)]`` (the problem
    text without the folder; recognition errors; bulk/slab cells kept apart from the gas references)."""
    from collections import Counter

    c: Counter = Counter()
    for _, r in df.iterrows():
        texts = []
        if r["problems"]:
            texts += str(r["problems"]).split(": ", 1)[-1].split("; ")
        if r["recognition_error"]:
            texts.append(str(r["recognition_error"]).split(": ", 1)[-1])
        if r["kind"] in APART_KINDS:
            texts.append(f"{r['kind']} cell, not a gas reference")
        for t in texts:
            c[re.sub(r"\(.*\)", "(...)", t).strip()] += 1
    return c.most_common()


def n_usable(df: pd.DataFrame) -> int:
    """Records an equation may use (usable, recognised, not a bulk/slab cell, finite energy)."""
    return int(len(_usable(df)))


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per record without the heavy columns (atoms, sites, charges)."""
    keep = [c for c in df.columns if c not in ("atoms", "sites", "charges", "magmoms", "meta")]
    return df[keep].copy()


def compute_energetics(records: pd.DataFrame, outdir: str | os.PathLike | None = None,
                       n_reference_charge_e: float | None = None, figures: bool = True,
                       progress: bool = False) -> dict:
    """Whole job: annotate records, compute all tables, and (if ``outdir``) write CSVs and figures.

    Returns a dict with DataFrames ``records, e_int, e_int_missing, dimers, dimers_missing,
    site_site_potential, bader``, ``warnings`` (list of str), ``counts`` (read / recognised / flagged / used)
    and ``paths`` (name → written file).
    """
    df = annotate(records, progress=progress)
    e_int, e_miss = interaction_energies(df)
    dim, dim_miss = dimer_energies(df)
    ssp = site_site_potential(df)
    bader = bader_descriptor(df, n_reference_charge_e)
    warn = [p for p in df["problems"] if p] + [e for e in df["recognition_error"] if e]
    warn += [f"{r['calc_dir']}: note: {r['notes']}" for _, r in df.iterrows() if r["notes"]]
    warn += [f"{r['calc_dir']}: {r['phase_note']}" for _, r in df.iterrows() if r["phase_note"]]
    for w in inconsistent_settings(df):
        log.warning("%s", w)
        warn.append(w)
    dup = duplicates(df)
    for _, d in dup.iterrows():
        warn.append(f"{d['dropped_dir']}: duplicate of {d['kind']} {d['id'] or d['occupants']} ({d['settings']}), "
                    f"{d['delta_eV']:+.3f} eV above {d['kept_dir']}, which is used instead")
    for name, table, what in (("E_int", e_int, "calc_dir"), ("dimer", dim, "calc_dir")):
        for _, r in table[table["spin_note"].astype(bool)].iterrows() if len(table) else []:
            term = (f"eq. {r['equation']} ({r.get('site_kinds', '')}, {r.get('occupants', '')})"
                    if name == "E_int" and r.get("equation") else r.get("occupants"))
            warn.append(f"{r[what]}: {name} {term}: {r['spin_note']}")
    used_dirs = set(e_int["calc_dir"]) | set(dim["calc_dir"]) | set(ssp["calc_dir"])
    for col in ("bare_dir", "first_only_dir", "second_only_dir"):
        used_dirs |= set(e_int[col])
    used_dirs |= set(ssp["reference_dir"])
    for col in ("site_dir", "single_dir", "gas_atom_dir", "gas_dimer_dir"):
        used_dirs |= set(dim[col])
    used_dirs |= set(bader["calc_dir"])
    used_dirs.discard("")
    counts = dict(
        read=int(len(df)), recognised=int(df["recognised"].sum()), flagged=int((~df["usable"].astype(bool)).sum()),
        used=int(df["calc_dir"].isin(used_dirs).sum()), duplicates=int(len(dup)),
        gas=int(df["kind"].isin(["gas_atom", "gas_dimer"]).sum()), bulk=int(df["kind"].isin(APART_KINDS).sum()),
        sheet=int((df["n_sheet_points"].astype(int) > 0).sum()),
    )
    res = dict(records=df, e_int=e_int, e_int_missing=e_miss, dimers=dim, dimers_missing=dim_miss,
               site_site_potential=ssp, bader=bader, duplicates=dup, warnings=warn, counts=counts, paths={})
    if outdir is not None:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        paths = res["paths"]
        paths["records"] = write_csv(out / "records.csv", summary_table(df))
        paths["e_int"] = write_csv(out / "e_int.csv", e_int)
        paths["e_int_missing"] = write_csv(out / "e_int_missing.csv", e_miss)
        paths["dimers"] = write_csv(out / "dimer_formation.csv", dim)
        paths["dimers_missing"] = write_csv(out / "dimer_missing.csv", dim_miss)
        paths["site_site_potential"] = write_csv(out / "site_site_potential.csv", ssp)
        paths["bader"] = write_csv(out / "bader_descriptor.csv", bader)
        paths["duplicates"] = write_csv(out / "duplicates.csv", dup)
        paths["warnings"] = atomic_write(out / "warnings.txt", "\n".join(warn) + ("\n" if warn else ""))
        if figures:
            from sacmap.analysis.energetics.figures import write_figures

            paths.update(write_figures(res, out))
    return res


def energetics_from_sources(sources, outdir: str | os.PathLike | None = None,
                            n_reference_charge_e: float | None = None, figures: bool = True,
                            progress: bool = False) -> dict:
    """:func:`compute_energetics` of every calculation found in ``sources`` (folders, trees, archives, CML files,
    ``*.db`` / ``postgresql://`` databases; :func:`~sacmap.analysis.energetics.readers.load_records`).

    Raises :class:`AnalysisInputError` when the sources hold no calculation at all.
    """
    from sacmap.analysis.energetics.readers import load_records

    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    records = load_records(sources, progress=progress)
    if records.empty:
        raise AnalysisInputError(
            f"{', '.join(redact_url(str(x)) for x in sources)}: no calculations found (no vasprun.xml, OUTCAR, "
            ".cml or db rows)"
        )
    return compute_energetics(records, outdir, n_reference_charge_e=n_reference_charge_e, figures=figures,
                              progress=progress)
