#include "core/report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace mia::report {
namespace {

constexpr double kPlotRight = kPlotLeft + kPlotSize;
constexpr double kPlotBottom = kPlotTop + kPlotSize;
constexpr double kLegendLeft = kPlotRight + 24;
constexpr double kLegendRowHeight = 18;
constexpr double kLegendSwatchWidth = 24;
// Rough advance of a 12px sans-serif character; only sizes the canvas so the
// legend is not cut off, so overestimating a little is the safe side.
constexpr double kCharWidth = 7;

// Fixed-point text for coordinates and tick labels ("%.*f").
std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

// Number of code points, for the legend width estimate.
size_t CodePoints(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++count;
  }
  return count;
}

void AppendText(std::string& out, double x, double y, std::string_view attributes,
                std::string_view text) {
  out += "<text x=\"" + Fixed(x, 2) + "\" y=\"" + Fixed(y, 2) + "\"";
  if (!attributes.empty()) {
    out += ' ';
    out += attributes;
  }
  out += '>';
  out += XmlEscape(text);
  out += "</text>\n";
}

void AppendLine(std::string& out, double x1, double y1, double x2, double y2,
                std::string_view attributes) {
  out += "<line x1=\"" + Fixed(x1, 2) + "\" y1=\"" + Fixed(y1, 2) + "\" x2=\"" + Fixed(x2, 2) +
         "\" y2=\"" + Fixed(y2, 2) + "\"";
  if (!attributes.empty()) {
    out += ' ';
    out += attributes;
  }
  out += "/>\n";
}

struct Tick {
  double value;
  std::string label;
};

// Decades on a log axis, fifths on a linear one.
std::vector<Tick> Ticks(const Axis& axis) {
  std::vector<Tick> ticks;
  if (axis.log) {
    const int low = static_cast<int>(std::ceil(std::log10(axis.min) - 1e-9));
    const int high = static_cast<int>(std::floor(std::log10(axis.max) + 1e-9));
    for (int e = low; e <= high; ++e) {
      ticks.push_back({std::pow(10.0, e), e == 0 ? "1" : "1e" + std::to_string(e)});
    }
  } else {
    const int decimals = axis.max - axis.min >= 10 ? 0 : axis.max - axis.min >= 0.5 ? 1 : 3;
    for (int k = 0; k <= 5; ++k) {
      const double value = axis.min + (axis.max - axis.min) * k / 5.0;
      std::string label = Fixed(value, decimals);
      if (label == "0.0") label = "0";
      if (label == "1.0") label = "1";
      ticks.push_back({value, label});
    }
  }
  return ticks;
}

// HSL (h in degrees, s and l in [0, 1]) to "#rrggbb".
std::string HslToHex(double h, double s, double l) {
  const double c = (1 - std::fabs(2 * l - 1)) * s;
  const double hp = std::fmod(h, 360.0) / 60.0;
  const double x = c * (1 - std::fabs(std::fmod(hp, 2.0) - 1));
  double r = 0, g = 0, b = 0;
  if (hp < 1) {
    r = c, g = x;
  } else if (hp < 2) {
    r = x, g = c;
  } else if (hp < 3) {
    g = c, b = x;
  } else if (hp < 4) {
    g = x, b = c;
  } else if (hp < 5) {
    r = x, b = c;
  } else {
    r = c, b = x;
  }
  const double m = l - c / 2;
  auto channel = [m](double v) {
    return static_cast<int>(std::lround(std::clamp(v + m, 0.0, 1.0) * 255));
  };
  char buffer[8];
  std::snprintf(buffer, sizeof(buffer), "#%02x%02x%02x", channel(r), channel(g), channel(b));
  return buffer;
}

}  // namespace

double Axis::Normalize(double value) const {
  if (std::isnan(value)) return value;
  if (log) {
    // Zero and negative values have no logarithm; they sit at the axis minimum.
    const double clamped = std::clamp(value > min ? value : min, min, max);
    const double low = std::log10(min);
    return (std::log10(clamped) - low) / (std::log10(max) - low);
  }
  return (std::clamp(value, min, max) - min) / (max - min);
}

double Axis::Map(double value) const {
  return pixel_at_min + Normalize(value) * (pixel_at_max - pixel_at_min);
}

Axis XAxis(bool log_axes, double log_min) {
  return Axis{log_axes, log_axes ? log_min : 0.0, 1.0, kPlotLeft, kPlotRight};
}

Axis YAxis(bool log_axes, double log_min) {
  // SVG y grows downwards: the axis minimum is at the bottom of the plot area.
  return Axis{log_axes, log_axes ? log_min : 0.0, 1.0, kPlotBottom, kPlotTop};
}

std::string XmlEscape(std::string_view text) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
          if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            out += kReplacement;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Multi-byte UTF-8: check the lead byte, the continuation bytes and the
    // ranges that exclude overlong forms and surrogates (RFC 3629).
    size_t length = 0;
    unsigned char second_low = 0x80, second_high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) second_low = 0xA0;
      if (c == 0xED) second_high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) second_low = 0x90;
      if (c == 0xF4) second_high = 0x8F;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      const unsigned char low = k == 1 ? second_low : 0x80;
      const unsigned char high = k == 1 ? second_high : 0xBF;
      valid = next >= low && next <= high;
    }
    // U+FFFE and U+FFFF are not XML characters either.
    if (valid && length == 3 && c == 0xEF && static_cast<unsigned char>(text[i + 1]) == 0xBF &&
        static_cast<unsigned char>(text[i + 2]) >= 0xBE) {
      valid = false;
    }
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

std::string SeriesColor(int index) {
  // Tableau 10: distinguishable and reasonably colorblind-friendly.
  static constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                             "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                             "#bcbd22", "#17becf"};
  constexpr int kPaletteSize = static_cast<int>(sizeof(kPalette) / sizeof(kPalette[0]));
  if (index >= 0 && index < kPaletteSize) return kPalette[index];
  // Golden-angle steps never revisit a hue, so later curves stay distinct;
  // alternating lightness separates neighbours further.
  const int k = index < 0 ? -index : index - kPaletteSize;
  const double hue = std::fmod(17.0 + k * 137.50776405, 360.0);
  return HslToHex(hue, 0.65, k % 2 == 0 ? 0.42 : 0.58);
}

std::vector<size_t> ThinCurve(absl::Span<const double> x, absl::Span<const double> y,
                              int max_points, const Axis& x_axis, const Axis& y_axis) {
  const size_t size = std::min(x.size(), y.size());
  std::vector<size_t> finite;
  finite.reserve(size);
  for (size_t i = 0; i < size; ++i) {
    if (std::isfinite(x[i]) && std::isfinite(y[i])) finite.push_back(i);
  }
  const size_t limit = static_cast<size_t>(std::max(max_points, 2));
  if (finite.size() <= limit) return finite;

  // Cut the curve's length in normalized plot units (|du| + |dv| per step,
  // after mapping both axes) into equal bins. The running length never
  // decreases, so each bin is one run of points and keeping its first and
  // last point bounds the count by 2 * bins. On log axes the length is
  // spent where the log plot shows detail (low FPR), which a plain FPR grid
  // would not do; for a ROC from (0, 0) to (1, 1) the total is 2.
  const int bins = std::max(1, static_cast<int>((limit - 2) / 2));
  std::vector<double> length(finite.size(), 0.0);
  for (size_t k = 1; k < finite.size(); ++k) {
    const size_t i = finite[k], j = finite[k - 1];
    length[k] = length[k - 1] + std::fabs(x_axis.Normalize(x[i]) - x_axis.Normalize(x[j])) +
                std::fabs(y_axis.Normalize(y[i]) - y_axis.Normalize(y[j]));
  }
  const double total = length.back();
  std::vector<int> bin(finite.size(), 0);
  if (total > 0) {
    for (size_t k = 0; k < finite.size(); ++k) {
      bin[k] = std::clamp(static_cast<int>(std::floor(length[k] / total * bins)), 0, bins - 1);
    }
  }
  std::vector<size_t> kept;
  for (size_t k = 0; k < finite.size(); ++k) {
    const bool first = k == 0 || bin[k] != bin[k - 1];
    const bool last = k + 1 == finite.size() || bin[k] != bin[k + 1];
    if (first || last) kept.push_back(finite[k]);
  }
  return kept;
}

std::string RenderLinePlot(const PlotSpec& spec, const std::vector<PlotSeries>& series) {
  Axis x_axis = XAxis(spec.log_axes, spec.log_min);
  Axis y_axis = YAxis(spec.log_axes, spec.log_min);
  if (!spec.log_axes) {
    if (spec.x_max > 0 && std::isfinite(spec.x_max)) x_axis.max = spec.x_max;
    if (spec.y_max > 0 && std::isfinite(spec.y_max)) y_axis.max = spec.y_max;
  }

  size_t longest_label = 0;
  for (const PlotSeries& s : series) longest_label = std::max(longest_label, CodePoints(s.label));
  const double width =
      std::ceil(kLegendLeft + kLegendSwatchWidth + 8 + longest_label * kCharWidth + 16);
  const double height = std::max(
      kPlotBottom + 64, std::ceil(kPlotTop + 8 + series.size() * kLegendRowHeight + 16));
  const std::string w = Fixed(width, 0);
  const std::string h = Fixed(height, 0);

  std::string out;
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + w +
         "\" height=\"" + h + "\" viewBox=\"0 0 " + w + " " + h +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out += "<title>" + XmlEscape(spec.title) + "</title>\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + w + "\" height=\"" + h + "\" fill=\"#ffffff\"/>\n";
  AppendText(out, kPlotLeft, 28, "class=\"title\" font-size=\"16\" font-weight=\"bold\"",
             spec.title);
  if (!spec.subtitle.empty()) {
    AppendText(out, kPlotLeft, 48, "class=\"subtitle\" fill=\"#555555\"", spec.subtitle);
  }

  // Grid and ticks first so the curves are drawn over them.
  out += "<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
  const std::vector<Tick> x_ticks = Ticks(x_axis);
  const std::vector<Tick> y_ticks = Ticks(y_axis);
  for (const Tick& t : x_ticks) {
    const double px = x_axis.Map(t.value);
    AppendLine(out, px, kPlotTop, px, kPlotBottom, "");
  }
  for (const Tick& t : y_ticks) {
    const double py = y_axis.Map(t.value);
    AppendLine(out, kPlotLeft, py, kPlotRight, py, "");
  }
  out += "</g>\n";
  out += "<rect class=\"plot-area\" x=\"" + Fixed(kPlotLeft, 2) + "\" y=\"" +
         Fixed(kPlotTop, 2) + "\" width=\"" + Fixed(kPlotSize, 2) + "\" height=\"" +
         Fixed(kPlotSize, 2) + "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  out += "<g class=\"x-ticks\" stroke=\"#333333\">\n";
  for (const Tick& t : x_ticks) {
    const double px = x_axis.Map(t.value);
    AppendLine(out, px, kPlotBottom, px, kPlotBottom + 5, "");
    AppendText(out, px, kPlotBottom + 19, "stroke=\"none\" fill=\"#333333\" text-anchor=\"middle\"",
               t.label);
  }
  out += "</g>\n";
  out += "<g class=\"y-ticks\" stroke=\"#333333\">\n";
  for (const Tick& t : y_ticks) {
    const double py = y_axis.Map(t.value);
    AppendLine(out, kPlotLeft - 5, py, kPlotLeft, py, "");
    AppendText(out, kPlotLeft - 8, py + 4, "stroke=\"none\" fill=\"#333333\" text-anchor=\"end\"",
               t.label);
  }
  out += "</g>\n";
  AppendText(out, kPlotLeft + kPlotSize / 2, kPlotBottom + 44,
             "class=\"x-label\" text-anchor=\"middle\"", spec.x_label);
  const double y_label_x = 20;
  const double y_label_y = kPlotTop + kPlotSize / 2;
  AppendText(out, y_label_x, y_label_y,
             "class=\"y-label\" text-anchor=\"middle\" transform=\"rotate(-90 " +
                 Fixed(y_label_x, 2) + " " + Fixed(y_label_y, 2) + ")\"",
             spec.y_label);

  if (spec.chance_diagonal) {
    AppendLine(out, x_axis.Map(x_axis.min), y_axis.Map(y_axis.min), x_axis.Map(x_axis.max),
               y_axis.Map(y_axis.max),
               "class=\"chance\" stroke=\"#999999\" stroke-width=\"1\" "
               "stroke-dasharray=\"4 4\"");
  }

  out += "<g class=\"curves\" fill=\"none\" stroke-width=\"1.5\" "
         "stroke-linejoin=\"round\">\n";
  for (const PlotSeries& s : series) {
    std::string points;
    const size_t size = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < size; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (!points.empty()) points += ' ';
      points += Fixed(x_axis.Map(s.x[i]), 2) + "," + Fixed(y_axis.Map(s.y[i]), 2);
    }
    if (points.empty()) continue;
    const std::string dash =
        s.dash.empty() ? "" : " stroke-dasharray=\"" + XmlEscape(s.dash) + "\"";
    out += "<polyline class=\"curve\" stroke=\"" + XmlEscape(s.color) + "\"" + dash +
           " points=\"" + points + "\"><title>" + XmlEscape(s.label) + "</title></polyline>\n";
  }
  out += "</g>\n";

  out += "<g class=\"legend\">\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const double row = kPlotTop + 8 + (k + 0.5) * kLegendRowHeight;
    AppendLine(out, kLegendLeft, row, kLegendLeft + kLegendSwatchWidth, row,
               "stroke=\"" + XmlEscape(series[k].color) + "\" stroke-width=\"2.5\"" +
                   (series[k].dash.empty()
                        ? std::string()
                        : " stroke-dasharray=\"" + XmlEscape(series[k].dash) + "\""));
    AppendText(out, kLegendLeft + kLegendSwatchWidth + 8, row + 4, "class=\"legend-label\"",
               series[k].label);
  }
  out += "</g>\n";
  out += "</svg>\n";
  return out;
}

void StepCurve(absl::Span<const double> fpr, absl::Span<const double> tpr, double min_fpr,
               std::vector<double>* x, std::vector<double>* y) {
  x->clear();
  y->clear();
  const size_t n = std::min(fpr.size(), tpr.size());
  // The TPR resolved at min_fpr: the largest among points with FPR <= min_fpr.
  double start = -1;
  size_t k = 0;
  for (; k < n && fpr[k] <= min_fpr; ++k) start = std::max(start, tpr[k]);
  if (start < 0) return;  // no operating point at or below min_fpr (cannot happen for a ROC)
  x->push_back(min_fpr);
  y->push_back(start);
  double level = start;
  for (; k < n; ++k) {
    if (tpr[k] <= level) continue;  // never down: the step holds the largest TPR so far
    x->push_back(fpr[k]);  // level to this FPR,
    y->push_back(level);
    x->push_back(fpr[k]);  // then up
    y->push_back(tpr[k]);
    level = tpr[k];
  }
  if (n > 0 && x->back() < fpr[n - 1]) {  // level to the last FPR (1)
    x->push_back(fpr[n - 1]);
    y->push_back(level);
  }
}

std::string SeriesDash(int index) {
  // Eight patterns: as many as the report plots targets per attack in full.
  static const char* const kDashes[] = {"",     "7 4",         "2 3", "9 3 2 3",
                                        "14 4", "5 2 1 2 1 2", "1 6", "10 2 10 8"};
  return kDashes[static_cast<size_t>(index) % std::size(kDashes)];
}

}  // namespace mia::report
