"""Golden outputs: record them, compare against them with tolerances, and find where two runs part.

- ``record(outputs, path, metadata=...)`` / ``load(path)``: an ``.npz`` of plain
  arrays plus a JSON metadata string. Nothing is pickled, and ``load`` refuses
  files that would need unpickling.
- ``compare(actual, expected, tolerance)`` returns a ``Report``: per output the
  max/mean absolute and relative error, the percent of mismatching elements and
  the smallest ``atol`` (at the given ``rtol``) and ``rtol`` (at the given
  ``atol``) that would pass.
- ``layerwise_diff(net, feeds, reference)`` runs both through the reference
  interpreter, capturing every tensor, and names the first layer (producers
  before readers, otherwise network order) whose output diverges: the fp16
  policy of a network against its fp32 policy, or against earlier captures.
- ``assert_golden(actual, path)`` for pytest; ``TRTDSL_UPDATE_GOLDEN=1`` rewrites
  the golden files instead of comparing.

An element matches when ``|a - e| <= atol + rtol * |e|`` (``numpy.isclose``);
NaN matches NaN and an infinity matches the same infinity.

Example::

    golden.record(trtdsl.reference.run(net, feeds), "resnet.npz", metadata={"precision": "float16"})
    report = golden.compare(new_outputs, golden.load("resnet.npz")[0], "float16")
    print(report)  # a table, one row per output
"""

from ..argcheck import check_all
from ..errors import GoldenMismatch
from .compare import UPDATE_ENV, assert_golden, compare, compare_files
from .files import load, record
from .layerwise import Divergence, layerwise_diff
from .report import OutputReport, Report
from .tolerance import DEFAULT_TOLERANCES, Tolerance

__all__ = [
    "DEFAULT_TOLERANCES", "Divergence", "GoldenMismatch", "OutputReport", "Report", "Tolerance", "UPDATE_ENV",
    "assert_golden", "compare", "compare_files", "layerwise_diff", "load", "record",
]  # fmt: skip

check_all(globals(), __all__, "trtdsl.golden")  # a wrongly typed argument is an ArgumentError naming it
