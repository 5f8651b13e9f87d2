// A small, dependency-free SVG line-plot renderer for the ROC figures of the
// report: fixed layout, linear or log axes, a chance diagonal and a legend.
// The output is self-contained (no fonts, scripts or external references) so
// it can be opened from disk or embedded in an HTML page as is.
//
// Plain functions; no state, safe from any thread.
#ifndef MIA_CORE_REPORT_SVG_PLOT_H_
#define MIA_CORE_REPORT_SVG_PLOT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace mia::report {

// Fixed geometry of the plot area, in SVG user units (pixels). Exposed so
// tests (and anyone overlaying marks) can map data to pixels the same way.
inline constexpr double kPlotLeft = 72;
inline constexpr double kPlotTop = 64;
inline constexpr double kPlotSize = 480;  // the plot area is square

// One axis: maps a data value to a pixel coordinate. Values outside
// [min, max] (and, on a log axis, zero or negative values) are clamped to the
// axis range, which is how a ROC point with FPR 0 lands on a log axis.
struct Axis {
  bool log = false;
  double min = 0;  // must be > 0 on a log axis
  double max = 1;
  double pixel_at_min = 0;
  double pixel_at_max = 1;

  // Position of `value` along the axis in [0, 1] after clamping; NaN stays NaN.
  double Normalize(double value) const;
  double Map(double value) const;
};

// The x and y axes of a plot area of the fixed geometry above.
Axis XAxis(bool log_axes, double log_min);
Axis YAxis(bool log_axes, double log_min);

struct PlotSeries {
  std::string label;  // plain text; escaped when rendered
  std::string color;  // any SVG color, e.g. "#1f77b4"
  std::string dash;   // SVG stroke-dasharray, e.g. "6 3"; empty: solid
  std::vector<double> x;
  std::vector<double> y;  // same length as x
};

struct PlotSpec {
  std::string title;
  std::string subtitle;  // may be empty
  std::string x_label;
  std::string y_label;
  bool log_axes = false;  // log-log with decade ticks from log_min to 1
  double log_min = 1e-5;  // a power of ten below 1
  bool chance_diagonal = true;
  // Linear axes only: the upper ends of the x and y axes (each > 0; both
  // start at 0). Ticks are labelled without decimals when the end is >= 10.
  double x_max = 1;
  double y_max = 1;
};

// Renders one plot, the axes spanning [0, x_max] and [0, y_max] (or
// [log_min, 1] on log axes),
// one <polyline> per series with at least one finite point, in order, and one
// legend entry per series. The text starts with "<svg".
std::string RenderLinePlot(const PlotSpec& spec, const std::vector<PlotSeries>& series);

// Escapes &, <, >, " and ' for XML text and attribute values, and replaces
// what XML 1.0 cannot carry at all (invalid UTF-8, control characters other
// than tab, LF and CR) by U+FFFD, so any name gives a well-formed document.
std::string XmlEscape(std::string_view text);

// The points of a ROC drawn as the step function it is, where it is resolved:
// the TPR at FPR x is the largest TPR among operating points with FPR <= x
// (the table's definition), so from each point the curve runs level to the
// next point's FPR, then up. It starts at FPR `min_fpr` (the smallest
// resolvable FPR, 1 / #non-members, or the axis minimum if larger) at the TPR
// resolved there, and nothing is drawn below it. `fpr` ascending, as
// metrics::RocCurve holds it.
void StepCurve(absl::Span<const double> fpr, absl::Span<const double> tpr, double min_fpr,
               std::vector<double>* x, std::vector<double>* y);

// A dash pattern per index ("" first, then dashed and dotted patterns), so
// series that share a color stay tellable apart.
std::string SeriesDash(int index);

// A distinct color per index: a 10-color qualitative palette first, then
// golden-angle hues, as "#rrggbb".
std::string SeriesColor(int index);

// Indices (increasing) of the points of a curve to draw, at most
// max(max_points, 2) of them. The curve's length in the plot's normalized
// coordinates (|du| + |dv| per step after mapping both axes, so log axes are
// accounted for) is cut into max_points / 2 - 1 equal bins and the first and
// last point of each bin are kept. Every dropped point then lies on a stretch
// of at most one bin's length (2 / bins of the plot's width plus height, for
// a ROC) between two kept points, while long single ROC segments are kept
// exactly. Non-finite points are dropped; short curves are returned whole.
std::vector<size_t> ThinCurve(absl::Span<const double> x, absl::Span<const double> y,
                              int max_points, const Axis& x_axis, const Axis& y_axis);

}  // namespace mia::report

#endif  // MIA_CORE_REPORT_SVG_PLOT_H_
