"""Re-referencing of intracranial channels: shaft Laplacian, common average, bipolar.

BrainBERT re-references each sEEG contact to the mean of its two neighbours on the same depth shaft (a
Laplacian) and drops contacts that lack either neighbour. On an ECoG grid or strip with coordinates the
neighbours come from positions instead (:func:`coordinate_neighbours`: the 4-neighbourhood on a grid), since
label numbers run row by row and make the end of one row a "neighbour" of the start of the next. Here that is the default for sEEG (and DBS) contacts,
ECoG grids and strips get a common average per electrode group, and the neighbour requirement can be relaxed so
that shaft ends and contacts next to a removed bad contact are kept.

Every output channel is ``primary - mean(reference set)``: the Laplacian's reference set is the neighbours,
the common average's is the whole group (the primary included), bipolar's is the next contact and "none" has
an empty one. :class:`ReferencedData` records that recipe per channel (``sources``/``weights``) so downstream
code can place each derived channel in space (e.g. at the coordinates of ``sources[i][0]``, or their mean).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "REFERENCE_SCHEMES",
    "ReferencedData",
    "parse_contact_label",
    "laplacian_reference",
    "common_average_reference",
    "bipolar_reference",
    "apply_reference",
    "reference_plan",
    "ReferencePlan",
    "coordinate_neighbours",
]
# contacts closer than this many times the group's typical spacing are neighbours: above 1 (spacing jitter),
# below sqrt(2) (a grid's diagonal), so a regular grid gets its 4-neighbourhood
NEIGHBOUR_RADIUS = 1.25

REFERENCE_SCHEMES = ("auto", "laplacian", "car", "bipolar", "none")
# Group label for channels without one; BIDS writes missing values as "n/a".
UNGROUPED = "n/a"

# Stem, optional whitespace/underscore separators, trailing ASCII digits. The stem is matched lazily so that
# all trailing digits go to the contact number and separators are not part of the stem.
_LABEL_RE = re.compile(r"^(?P<stem>.*?)[\s_]*(?P<number>[0-9]+)$", re.ASCII | re.DOTALL)


def parse_contact_label(name: str) -> tuple[str, int] | None:
    """Shaft stem and contact number of an sEEG/ECoG contact label.

    Parameters
    ----------
    name : str
        Channel name, e.g. ``"LA1"``, ``"RH10"``, ``"A'3"``, ``"LAH 4"``, ``"LAH_04"``.

    Returns
    -------
    (stem, number) or None
        The stem is everything before the trailing digits, with surrounding whitespace and any whitespace or
        underscores between stem and digits removed; the number is the trailing digits as an integer (leading
        zeros ignored). So ``"LAH 4"``, ``"LAH_04"`` and ``"LAH4"`` all give ``("LAH", 4)``, while primes stay
        in the stem (``"A'3"`` -> ``("A'", 3)``, distinct from ``"A3"`` -> ``("A", 3)``). Case is kept.
        A hyphen is *not* a separator, since it usually marks a bipolar derivation (``"LA1-LA2"`` parses as
        stem ``"LA1-LA"``, a shaft of its own). None when the label does not end in digits or nothing but
        separators precedes them (``"LA"``, ``"12"``, ``"_4"``).
    """
    match = _LABEL_RE.match(str(name).strip())
    if match is None:
        return None
    stem = match.group("stem").strip()
    if not stem.strip("_"):
        return None
    return stem, int(match.group("number"))


@dataclass
class ReferencedData:
    """Re-referenced channels and how each was made.

    Attributes
    ----------
    data : ndarray, shape (n_out, n_samples), float64
        Re-referenced signal, in the unit of the input.
    ch_names : list of str
        Output channel names (input names; ``"A-B"`` for bipolar pairs).
    ch_types : list of str
        Output channel types (lower case, those of the primary input channel).
    dropped : dict
        Input channel name -> one-line reason it produced no output channel of its own.
    description : dict
        JSON-serialisable summary of what was done, for sidecars.
    sources : list of list of str
        For each output channel the input channels it was built from, primary contact first.
    weights : list of list of float
        Coefficients matching ``sources``: ``data[i] == sum(w * input[s] for s, w in zip(sources[i], weights[i]))``.
    """

    data: np.ndarray
    ch_names: list[str]
    ch_types: list[str]
    dropped: dict[str, str]
    description: dict[str, Any]
    sources: list[list[str]]
    weights: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Derivation:
    """One output channel: input ``primary`` minus the mean of inputs ``refs`` (indices into the full input)."""

    name: str
    ch_type: str
    primary: int
    refs: tuple[int, ...]
    rule: str = ""            # how a Laplacian chose its neighbours: "coordinates" or "label numbers"


# --------------------------------------------------------------------------------------------------- helpers


def _check_inputs(data: np.ndarray, ch_names: Sequence[str],
                  ch_types: Sequence[str] | None, default_type: str) -> tuple[np.ndarray, list[str], list[str]]:
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"data must have shape (n_channels, n_samples), got shape {x.shape}")
    names = [str(n) for n in ch_names]
    if len(names) != x.shape[0]:
        raise ValueError(f"{len(names)} channel names for {x.shape[0]} channels of data")
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise ValueError(f"duplicate channel names: {', '.join(duplicates)}")
    if ch_types is None:
        types = [default_type] * len(names)
    else:
        types = [str(t).lower() for t in ch_types]
        if len(types) != len(names):
            raise ValueError(f"{len(types)} channel types for {len(names)} channels")
    return x, names, types


def _group_labels(ch_names: list[str], groups: Mapping[str, Any] | Sequence[Any] | None) -> list[str]:
    """One group label per channel; missing labels (None, NaN, "", "n/a") become :data:`UNGROUPED`."""
    if groups is None:
        raw: list[Any] = [None] * len(ch_names)
    elif isinstance(groups, Mapping):
        raw = [groups.get(name) for name in ch_names]
    else:
        raw = list(groups)
        if len(raw) != len(ch_names):
            raise ValueError(f"{len(raw)} group labels for {len(ch_names)} channels")
    labels = []
    for label in raw:
        missing = label is None or (isinstance(label, float) and math.isnan(label))
        text = "" if missing else str(label).strip()
        labels.append(UNGROUPED if text in ("", UNGROUPED) else text)
    return labels


def _parse_contacts(indices: list[int], names: list[str],
                    dropped: dict[str, str]) -> dict[tuple[str, int], int]:
    """(stem, number) -> input index for the parseable, unambiguous contacts; the others go to ``dropped``."""
    by_contact: dict[tuple[str, int], list[int]] = {}
    for i in indices:
        parsed = parse_contact_label(names[i])
        if parsed is None:
            dropped[names[i]] = "label does not end in a contact number, so its shaft neighbours are unknown"
            continue
        by_contact.setdefault(parsed, []).append(i)
    contacts = {}
    for (stem, number), found in by_contact.items():
        if len(found) == 1:
            contacts[(stem, number)] = found[0]
            continue
        # e.g. "LA4" and "LA_04" in one recording: which one is the neighbour is a guess, so use neither.
        for i in found:
            others = ", ".join(names[j] for j in found if j != i)
            dropped[names[i]] = f"same shaft contact ({stem!r}, {number}) as {others}; neighbours are ambiguous"
    return contacts


def coordinate_neighbours(positions: np.ndarray, radius: float = NEIGHBOUR_RADIUS) -> list[list[int]]:
    """Neighbours of each contact of one grid or strip from its (n, 3) coordinates.

    The group's spacing is the median over contacts of the distance to the nearest other contact; contacts
    within ``radius`` x spacing of each other are neighbours, nearest first. On a regular grid that is the
    4-neighbourhood (diagonals are sqrt(2) x spacing away), on a strip the contacts either side.
    """
    xyz = np.asarray(positions, dtype=np.float64)
    if len(xyz) < 2:
        return [[] for _ in range(len(xyz))]
    distance = np.sqrt(((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distance, np.inf)
    spacing = float(np.median(distance.min(axis=1)))
    if not np.isfinite(spacing) or spacing <= 0:
        return [[] for _ in range(len(xyz))]
    out = []
    for row in distance:
        close = np.flatnonzero(row <= radius * spacing)
        out.append([int(j) for j in close[np.argsort(row[close], kind="stable")]])
    return out


def _coordinate_laplacian_derivs(indices: list[int], names: list[str], types: list[str], labels: list[str],
                                 positions: Mapping[str, Sequence[float]], min_neighbours: int,
                                 dropped: dict[str, str]) -> tuple[list[_Derivation], list[int]]:
    """Laplacian derivations of the groups whose every contact has finite coordinates; returns them and the
    indices left for the label-number rule (groups with a contact lacking coordinates)."""
    members: dict[str, list[int]] = {}
    for i in indices:
        members.setdefault(labels[i], []).append(i)
    derivs, rest = [], []
    for label, group in members.items():
        xyz = [positions.get(names[i]) for i in group]
        if any(p is None or not np.all(np.isfinite(np.asarray(p, float))) for p in xyz):
            rest += group
            continue
        for local, near in enumerate(coordinate_neighbours(np.asarray(xyz, float))):
            i = group[local]
            neighbours = tuple(group[j] for j in near)
            if len(neighbours) >= min_neighbours:
                derivs.append(_Derivation(names[i], types[i], i, neighbours, "coordinates"))
            else:
                dropped[names[i]] = (f"{len(neighbours)} neighbouring contact(s) by position in group {label!r}; "
                                     f"the Laplacian needs {min_neighbours}")
    return derivs, sorted(rest)


def _laplacian_derivs(indices: list[int], names: list[str], types: list[str], min_neighbours: int,
                      dropped: dict[str, str]) -> list[_Derivation]:
    contacts = _parse_contacts(indices, names, dropped)
    derivs = []
    for (stem, number), i in contacts.items():
        neighbours = [contacts[key] for key in ((stem, number - 1), (stem, number + 1)) if key in contacts]
        if len(neighbours) >= min_neighbours:
            derivs.append(_Derivation(names[i], types[i], i, tuple(neighbours), "label numbers"))
        elif neighbours:
            dropped[names[i]] = (f"only one neighbouring contact on shaft {stem!r} ({names[neighbours[0]]}); "
                                 f"the Laplacian needs {min_neighbours}")
        else:
            dropped[names[i]] = f"no neighbouring contact (number +-1) on shaft {stem!r}"
    return derivs


def _car_derivs(indices: list[int], names: list[str], types: list[str], labels: list[str],
                dropped: dict[str, str]) -> tuple[list[_Derivation], dict[str, list[str]]]:
    members: dict[str, list[int]] = {}
    for i in indices:
        members.setdefault(labels[i], []).append(i)
    derivs = []
    for label, group in members.items():
        if len(group) < 2:
            dropped[names[group[0]]] = (f"only channel in common-average group {label!r}; "
                                        "subtracting the average would leave zeros")
            continue
        refs = tuple(group)
        derivs.extend(_Derivation(names[i], types[i], i, refs) for i in group)
    return derivs, {label: [names[i] for i in group] for label, group in members.items()}


def _bipolar_derivs(indices: list[int], names: list[str], types: list[str],
                    dropped: dict[str, str]) -> list[_Derivation]:
    contacts = _parse_contacts(indices, names, dropped)
    derivs, paired = [], set()
    for (stem, number), i in contacts.items():
        j = contacts.get((stem, number + 1))
        if j is not None:
            derivs.append(_Derivation(f"{names[i]}-{names[j]}", types[i], i, (j,)))
            paired.update((i, j))
    for (stem, _number), i in contacts.items():
        if i not in paired:
            dropped[names[i]] = f"no adjacent contact (number +-1) on shaft {stem!r} to pair with"
    return derivs


@dataclass
class ReferencePlan:
    """Which output channel is computed from which inputs, decided from the labels alone (no signal).

    The participant level computes the outputs a few channels at a time from it (the recording never has to be
    in memory whole); :meth:`apply` computes them all at once. Both give the same numbers to the last bit.

    Attributes
    ----------
    input_names : list of str
        The input channels the indices in ``derivations`` refer to.
    derivations : list
        One per output channel, in input order of the primary contact.
    dropped, description :
        As in :class:`ReferencedData`.
    """

    input_names: list[str]
    derivations: list[_Derivation]
    dropped: dict[str, str]
    description: dict[str, Any]

    @property
    def ch_names(self) -> list[str]:
        return [d.name for d in self.derivations]

    @property
    def ch_types(self) -> list[str]:
        return [d.ch_type for d in self.derivations]

    @property
    def sources(self) -> list[list[str]]:
        names = self.input_names
        return [[names[d.primary]] + [names[r] for r in d.refs if r != d.primary] for d in self.derivations]

    @property
    def weights(self) -> list[list[float]]:
        weights = []
        for d in self.derivations:
            share = 1.0 / len(d.refs) if d.refs else 0.0
            weights.append([1.0 - share if d.primary in d.refs else 1.0]
                           + [-share for r in d.refs if r != d.primary])
        return weights

    @property
    def neighbours(self) -> list[tuple[str, list[str]]]:
        """Per output channel, for a Laplacian: (rule, the neighbour channels averaged); ("", []) otherwise."""
        names = self.input_names
        return [(d.rule, [names[r] for r in d.refs]) if d.rule else ("", []) for d in self.derivations]

    @property
    def shared_references(self) -> list[tuple[int, ...]]:
        """Reference sets averaged for several outputs (a common average): their mean is computed once."""
        counts = Counter(d.refs for d in self.derivations)
        return [refs for refs, count in counts.items() if count > 1 and len(refs) > 2]

    def inputs_of(self, rows: range) -> list[int]:
        """Input indices that output ``rows`` need, apart from the shared (common average) means."""
        shared = set(self.shared_references)
        needed = set()
        for d in self.derivations[rows.start:rows.stop]:
            needed.add(d.primary)
            if d.refs not in shared:
                needed.update(d.refs)
        return sorted(needed)

    def output_row(self, row: int, inputs: Mapping[int, np.ndarray] | np.ndarray,
                   means: Mapping[tuple[int, ...], np.ndarray], out: np.ndarray) -> None:
        """Write output channel ``row`` into ``out`` from input rows (indexable by input index) and the shared
        means."""
        d = self.derivations[row]
        if not d.refs:
            out[:] = inputs[d.primary]
            return
        mean = means.get(d.refs)
        if mean is None:
            mean = np.stack([inputs[r] for r in d.refs]).mean(axis=0)
        np.subtract(inputs[d.primary], mean, out=out)

    @property
    def summary(self) -> dict[str, Any]:
        """The description with channel counts, for sidecars."""
        return {**self.description, "n_input_channels": len(self.input_names),
                "n_output_channels": len(self.derivations), "n_dropped_channels": len(self.dropped)}

    def result(self, data: np.ndarray) -> ReferencedData:
        """Package computed outputs ``data`` (n_outputs, n_samples) with this plan's bookkeeping."""
        return ReferencedData(data=data, ch_names=self.ch_names, ch_types=self.ch_types, dropped=dict(self.dropped),
                              description=self.summary, sources=self.sources, weights=self.weights)

    def apply(self, data: np.ndarray) -> ReferencedData:
        """Compute every output channel from the whole signal ``data`` (n_inputs, n_samples)."""
        x = np.asarray(data, dtype=np.float64)
        out = np.empty((len(self.derivations), x.shape[1]), dtype=np.float64)
        means = {refs: x[list(refs)].mean(axis=0) for refs in self.shared_references}
        for row in range(len(self.derivations)):
            self.output_row(row, x, means, out[row])
        return self.result(out)


def _plan(names: list[str], derivs: list[_Derivation], dropped: dict[str, str],
          description: dict[str, Any]) -> ReferencePlan:
    """Outputs in input order of their primary contact."""
    return ReferencePlan(list(names), sorted(derivs, key=lambda d: d.primary), dict(dropped), description)


def _build(x: np.ndarray, names: list[str], derivs: list[_Derivation], dropped: dict[str, str],
           description: dict[str, Any]) -> ReferencedData:
    return _plan(names, derivs, dropped, description).apply(x)


def _check_min_neighbours(min_neighbours: int) -> int:
    if min_neighbours not in (1, 2):
        raise ValueError(f"min_neighbours must be 1 or 2, got {min_neighbours!r}")
    return int(min_neighbours)


def _laplacian_description(min_neighbours: int, by_position: bool = False) -> dict[str, Any]:
    if by_position:
        return {"method": "laplacian", "min_neighbours": min_neighbours, "neighbours": "coordinates",
                "formula": f"contact minus the mean of the contacts of its group within {NEIGHBOUR_RADIUS:g} x the "
                           "group's median nearest-contact spacing (a grid's 4-neighbourhood); groups with a contact "
                           "lacking coordinates use the label numbers +-1"}
    return {"method": "laplacian", "min_neighbours": min_neighbours, "neighbours": "label numbers",
            "formula": "contact minus the mean of the contacts numbered +-1 on the same shaft"}


def _car_description(groups: dict[str, list[str]]) -> dict[str, Any]:
    return {"method": "car", "formula": "channel minus the mean of all channels of its group (itself included)",
            "groups": groups}


_BIPOLAR_DESCRIPTION = {"method": "bipolar", "formula": "contact n minus contact n+1 on the same shaft"}

# ------------------------------------------------------------------------------------------------ public API


def laplacian_reference(data: np.ndarray, ch_names: Sequence[str], *, min_neighbours: int = 2,
                        ch_types: Sequence[str] | None = None) -> ReferencedData:
    """Shaft Laplacian: each contact minus the mean of its neighbours on the same shaft.

    Neighbours of contact ``(stem, n)`` (see :func:`parse_contact_label`) are the channels ``(stem, n - 1)``
    and ``(stem, n + 1)`` present in ``ch_names``; no other distance is bridged, so a gap in the numbering
    (a removed bad contact) counts as a missing neighbour.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal (volts in the pipeline).
    ch_names : sequence of str, length n_channels
        Unique channel names.
    min_neighbours : {2, 1}
        2 reproduces BrainBERT: contacts lacking either neighbour are dropped. 1 also keeps shaft ends and
        contacts next to a gap, referenced to their single neighbour.
    ch_types : sequence of str, optional
        Channel types carried to the output; default ``"seeg"`` for all.

    Returns
    -------
    ReferencedData
        Outputs in input order. Dropped: labels without a contact number, contacts sharing a (stem, number)
        with another label, contacts with fewer than ``min_neighbours`` neighbours.
    """
    min_neighbours = _check_min_neighbours(min_neighbours)
    x, names, types = _check_inputs(data, ch_names, ch_types, "seeg")
    dropped: dict[str, str] = {}
    derivs = _laplacian_derivs(list(range(len(names))), names, types, min_neighbours, dropped)
    return _build(x, names, derivs, dropped, {"scheme": "laplacian", **_laplacian_description(min_neighbours)})


def common_average_reference(data: np.ndarray, ch_names: Sequence[str],
                             groups: Mapping[str, Any] | Sequence[Any] | None = None, *,
                             ch_types: Sequence[str] | None = None) -> ReferencedData:
    """Common average reference: each channel minus the mean over the channels of its group.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal (volts in the pipeline).
    ch_names : sequence of str, length n_channels
        Unique channel names.
    groups : mapping or sequence, optional
        None: all channels form one group. A mapping channel name -> group name (e.g. one ECoG grid or strip
        per name, as the electrodes.tsv ``group`` column gives), or a sequence of group names parallel to
        ``ch_names``. Channels without a group (absent from the mapping, None, NaN, "" or "n/a") are averaged
        together as one further group.
    ch_types : sequence of str, optional
        Channel types carried to the output; default ``"ecog"`` for all.

    Returns
    -------
    ReferencedData
        Outputs in input order; the channels of every group sum to zero at each sample. A channel alone in
        its group is dropped (its average reference would be identically zero).
    """
    x, names, types = _check_inputs(data, ch_names, ch_types, "ecog")
    labels = _group_labels(names, groups)
    dropped: dict[str, str] = {}
    derivs, members = _car_derivs(list(range(len(names))), names, types, labels, dropped)
    return _build(x, names, derivs, dropped, {"scheme": "car", **_car_description(members)})


def bipolar_reference(data: np.ndarray, ch_names: Sequence[str], *,
                      ch_types: Sequence[str] | None = None) -> ReferencedData:
    """Bipolar montage: each contact minus the next one on the same shaft.

    Pairs are ``(stem, n)`` and ``(stem, n + 1)`` (see :func:`parse_contact_label`), named ``"<name n>-<name
    n+1>"`` with the input labels, e.g. ``"LA1-LA2"``. Gaps in the numbering are not bridged. For ECoG grids
    numbered row by row this also pairs the last contact of a row with the first of the next.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal (volts in the pipeline).
    ch_names : sequence of str, length n_channels
        Unique channel names.
    ch_types : sequence of str, optional
        Channel types carried to the output (that of the first contact of a pair); default ``"seeg"``.

    Returns
    -------
    ReferencedData
        Pairs in input order of their first contact. Dropped: labels without a contact number, ambiguous
        labels and contacts in no pair.
    """
    x, names, types = _check_inputs(data, ch_names, ch_types, "seeg")
    dropped: dict[str, str] = {}
    derivs = _bipolar_derivs(list(range(len(names))), names, types, dropped)
    return _build(x, names, derivs, dropped, {"scheme": "bipolar", **_BIPOLAR_DESCRIPTION})


def apply_reference(data: np.ndarray, ch_names: Sequence[str], ch_types: Sequence[str], scheme: str = "auto", *,
                    groups: Mapping[str, Any] | Sequence[Any] | None = None,
                    min_neighbours: int = 2,
                    positions: Mapping[str, Sequence[float]] | None = None) -> ReferencedData:
    """Re-reference a recording that may mix sEEG shafts, ECoG grids/strips and DBS leads.

    Each channel type is referenced separately (a depth contact is never averaged with a surface contact).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal (volts in the pipeline).
    ch_names : sequence of str, length n_channels
        Unique channel names.
    ch_types : sequence of str, length n_channels
        Channel types, e.g. ``"seeg"``, ``"ecog"``, ``"dbs"`` (case-insensitive).
    scheme : {"auto", "laplacian", "car", "bipolar", "none"}
        ``"auto"``: shaft Laplacian for every type except ``"ecog"``, common average per group for ``"ecog"``.
        ``"laplacian"`` / ``"bipolar"``: that montage for every type. ``"car"``: common average per type, and
        per group within a type when ``groups`` is given. ``"none"``: channels passed through unchanged.
    groups : mapping or sequence, optional
        Electrode groups for the common average, as in :func:`common_average_reference`.
    min_neighbours : {2, 1}
        Passed to the Laplacian, see :func:`laplacian_reference`.
    positions : mapping, optional
        Channel name -> (x, y, z): ECoG Laplacian neighbours from coordinates, see :func:`reference_plan`.

    Returns
    -------
    ReferencedData
        Outputs in input order of their primary contact. ``description["by_type"]`` records the method per
        channel type. May hold no channels at all (``data`` of shape (0, n_samples)); deciding whether that is
        an error is left to the caller.
    """
    x, _, _ = _check_inputs(data, ch_names, ch_types, "seeg")
    return reference_plan(ch_names, ch_types, scheme, groups=groups, min_neighbours=min_neighbours,
                          positions=positions).apply(x)


def reference_plan(ch_names: Sequence[str], ch_types: Sequence[str], scheme: str = "auto", *,
                   groups: Mapping[str, Any] | Sequence[Any] | None = None,
                   min_neighbours: int = 2,
                   positions: Mapping[str, Sequence[float]] | None = None) -> ReferencePlan:
    """What :func:`apply_reference` computes, from the channel labels alone (same arguments, without data).

    ``positions`` (channel name -> x, y, z, e.g. from electrodes.tsv): the Laplacian of ECoG channels then takes
    its neighbours from the coordinates, per electrode group (:func:`coordinate_neighbours`); sEEG and DBS shafts
    keep the label numbers."""
    scheme = str(scheme).lower()
    if scheme not in REFERENCE_SCHEMES:
        raise ValueError(f"unknown reference scheme {scheme!r}; expected one of {', '.join(REFERENCE_SCHEMES)}")
    min_neighbours = _check_min_neighbours(min_neighbours)
    _, names, types = _check_inputs(np.empty((len(ch_names), 0)), ch_names, ch_types, "seeg")
    labels = _group_labels(names, groups)

    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        by_type.setdefault(t, []).append(i)

    dropped: dict[str, str] = {}
    derivs: list[_Derivation] = []
    described: dict[str, Any] = {}
    for ch_type, indices in by_type.items():
        method = scheme
        if scheme == "auto":
            method = "car" if ch_type == "ecog" else "laplacian"
        if method == "none":
            derivs.extend(_Derivation(names[i], types[i], i, ()) for i in indices)
            described[ch_type] = {"method": "none"}
        elif method == "laplacian":
            by_position = ch_type == "ecog" and bool(positions)
            if by_position:
                found, indices = _coordinate_laplacian_derivs(indices, names, types, labels, positions,
                                                              min_neighbours, dropped)
                derivs.extend(found)
            derivs.extend(_laplacian_derivs(indices, names, types, min_neighbours, dropped))
            described[ch_type] = _laplacian_description(min_neighbours, by_position)
        elif method == "car":
            car, members = _car_derivs(indices, names, types, labels, dropped)
            derivs.extend(car)
            described[ch_type] = _car_description(members)
        else:
            derivs.extend(_bipolar_derivs(indices, names, types, dropped))
            described[ch_type] = dict(_BIPOLAR_DESCRIPTION)
    return _plan(names, derivs, dropped, {"scheme": scheme, "by_type": described})
