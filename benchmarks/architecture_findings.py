"""The paper's architecture findings, as data, and their verdicts.

Each finding of Santhanam et al. (Section 4.2.1, Fig. 6) is the set of
claims about best validation MSEs (by variant label) that would
reproduce it. A claim compares two variants: `<` (clearly lower), `<=`
(not clearly higher), `>` (clearly higher), `>=` (not clearly lower), or
`gain>` (the first pair's drop larger than the second's). "Clearly"
means by more than the noise: the seed-to-seed spread of the same network
(the "seed" group), at least 2% (`margin` raises it for one claim).

The verdict rule, the same for every finding: every claim holds,
REPRODUCED; every claim of one `key` group holds, PARTLY REPRODUCED;
else NOT REPRODUCED. A finding whose variants did not all run is not
reported.
"""

from typing import NamedTuple

SEED_PAIRS = (("B0 K=9 (base)", "B0 D=9 seed 2"), ("RBDN-3", "RBDN-3 seed 2"))
MIN_NOISE = 0.02


class Claim(NamedTuple):
    text: str  # what holds, said of the numbers ("4 is worse than 3")
    relation: str  # "<", "<=", ">", ">=" or "gain>"
    left: tuple  # variant labels (two for "gain>")
    right: tuple
    key: str = ""  # a group of claims enough for PARTLY REPRODUCED
    margin: float = 0.0  # the smallest relative difference that counts


class Finding(NamedTuple):
    name: str
    paper: str
    shown: tuple  # the variants whose MSEs are quoted, in order
    changes: tuple  # (from, to) pairs quoted as relative changes
    claims: tuple


def paper_findings(depths, filters):
    """The findings, for the study's depths and base width `filters`."""
    d = [f"B0 D={depth}" for depth in depths]
    up_to_9 = [f"B0 D={depth}" for depth in depths if depth <= 9]
    after_9 = [f"B0 D={depth}" for depth in depths if depth > 9]
    nine = "B0 D=9"
    base = "B0 K=9 (base)"
    kct = ("B0 K=5", "B0 T=5", f"B0 c={filters // 2}", f"B0 c={filters * 2}")
    rbdn = [f"RBDN-{n}" for n in range(5)]
    return (
        Finding(
            "Depth D",
            "steady improvement up to D=9, then saturation",
            tuple(d),
            ((d[0], nine),) + tuple((nine, later) for later in after_9),
            (
                Claim(
                    f"D=9 improves on {d[0][3:]}", "<", (nine,), (d[0],), "D"
                ),
                *(
                    Claim(
                        f"{b[3:]} is not worse than {a[3:]}", "<=", (b,), (a,)
                    )
                    for a, b in zip(up_to_9, up_to_9[1:], strict=False)
                ),
                *(
                    Claim(f"{later[3:]} saturates", ">=", (later,), (nine,))
                    for later in after_9 or ["B0 D=11"]
                ),
            ),
        ),
        Finding(
            "K, c, T",
            "changing them gives only minor gains over K9-c-T3-D9",
            (base, *kct),
            tuple((base, other) for other in kct),
            tuple(
                Claim(
                    f"{other} is no gain of 10%",
                    ">=",
                    (other,),
                    (base,),
                    margin=0.10,
                )
                for other in kct
            ),
        ),
        Finding(
            "Branches",
            "large gain from 0 to 1, gradual gains up to 3, worse at 4 "
            "(overfitting)",
            tuple(rbdn),
            ((rbdn[0], rbdn[1]), (rbdn[1], rbdn[3]), (rbdn[3], rbdn[4])),
            (
                Claim("0->1 gains", "<", (rbdn[1],), (rbdn[0],), "0->1"),
                Claim(
                    "0->1 is the largest gain",
                    "gain>",
                    (rbdn[0], rbdn[1]),
                    (rbdn[1], rbdn[3]),
                    "0->1",
                ),
                Claim("1->3 is not worse", "<=", (rbdn[3],), (rbdn[1],)),
                Claim("4 is worse than 3", ">", (rbdn[4],), (rbdn[3],), "4"),
            ),
        ),
        _pair(
            "Upsampling",
            "learnable unpooling + deconvolution beats fixed bilinear",
            "RBDN-3 learnable",
            "RBDN-3 bilinear",
        ),
        _pair(
            "Recursive branching",
            "the recursive merges beat the linear network without them",
            "RBDN-3 recursive (concat)",
            "RBDN-3 linear (no merge)",
        ),
    )


def _pair(name, paper, ours, theirs):
    return Finding(
        name,
        paper,
        (ours, theirs),
        ((ours, theirs),),
        (Claim(f"{ours} is lower", "<", (ours,), (theirs,)),),
    )


class _Judge:
    """Compares best validation MSEs with the study's noise level."""

    def __init__(self, best):
        self.best = best
        spreads = [
            abs(best[a] - best[b]) / max(best[a], best[b])
            for a, b in SEED_PAIRS
            if a in best and b in best
        ]
        self.spreads = spreads
        self.noise = max(spreads + [MIN_NOISE])

    def sign(self, a, b, margin=0.0):
        """-1 if `a` is clearly lower than `b`, 1 if clearly higher."""
        if abs(a - b) <= max(self.noise, margin) * max(a, b):
            return 0
        return -1 if a < b else 1

    def holds(self, claim):
        left = [self.best[label] for label in claim.left]
        right = [self.best[label] for label in claim.right]
        if claim.relation == "gain>":
            return left[0] - left[1] > right[0] - right[1]
        sign = self.sign(left[0], right[0], claim.margin)
        return {"<": sign < 0, "<=": sign <= 0, ">": sign > 0, ">=": sign >= 0}[
            claim.relation
        ]


def verdict(finding, judge):
    """The finding's verdict and whether each of its claims holds."""
    holding = [judge.holds(claim) for claim in finding.claims]
    if all(holding):
        return "REPRODUCED", holding
    groups = {claim.key for claim in finding.claims if claim.key}
    partly = any(
        all(
            held
            for held, claim in zip(holding, finding.claims, strict=True)
            if claim.key == group
        )
        for group in groups
    )
    return ("PARTLY REPRODUCED" if partly else "NOT REPRODUCED"), holding


def assess(best, depths, filters):
    """`[(number, finding, verdict, holding)]` for the findings whose
    variants all ran; `best` maps labels to best validation MSEs."""
    judge = _Judge(best)
    assessed = []
    for number, finding in enumerate(paper_findings(depths, filters), 1):
        labels = {
            label
            for claim in finding.claims
            for label in claim.left + claim.right
        }
        if labels <= set(best):
            assessed.append((number, finding, *verdict(finding, judge)))
    return judge, assessed


def findings(best, depths, filters):
    """The report's lines: the noise level, then one line per finding."""
    judge, assessed = assess(best, depths, filters)
    spreads = ", ".join(f"{100 * s:.1f}%" for s in judge.spreads)
    lines = [
        "Seed-to-seed spread of the best validation MSE (same network, "
        "another initialization and shuffle): "
        f"{spreads or 'not measured'}; below, differences under "
        f'{100 * judge.noise:.1f}% count as noise ("about equal").'
    ]
    for number, finding, result, holding in assessed:
        quoted = ", ".join(
            f"{label}: {best[label]:.5f}" for label in finding.shown
        )
        changes = ", ".join(
            f"{a} -> {b} {100 * (best[b] - best[a]) / best[a]:+.1f}%"
            for a, b in finding.changes
        )
        said = "; ".join(
            claim.text if held else f"not: {claim.text}"
            for claim, held in zip(finding.claims, holding, strict=True)
        )
        lines.append(
            f"{number}. **{finding.name}** (best validation MSE {quoted}). "
            f"Paper: {finding.paper}. Here: {changes}; {said}. "
            f"**{result}.**"
        )
    return lines
