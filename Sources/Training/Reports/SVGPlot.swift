import Foundation

/// Minimal SVG charts (histograms and curves) that any browser or image viewer opens.
public enum SVGPlot {
    public struct Series {
        public var name: String
        public var color: String
        public var values: [Double]
        public init(name: String, color: String, values: [Double]) {
            self.name = name
            self.color = color
            self.values = values
        }
    }

    /// Overlaid histograms (as step outlines with light fill) of several series on shared bins.
    public static func histogram(title: String, xLabel: String, series: [Series], bins: Int = 50,
                                 range: ClosedRange<Double>? = nil, density: Bool = true) -> String {
        let all = series.flatMap(\.values).filter(\.isFinite)
        let lo = range?.lowerBound ?? (all.min() ?? 0)
        var hi = range?.upperBound ?? (all.max() ?? 1)
        if hi <= lo { hi = lo + 1 }
        let width = (hi - lo) / Double(bins)
        var counts: [[Double]] = []
        for s in series {
            var c = [Double](repeating: 0, count: bins)
            for v in s.values where v.isFinite {
                let b = min(bins - 1, max(0, Int((v - lo) / width)))
                c[b] += 1
            }
            let total = max(1.0, Double(s.values.count))
            counts.append(density ? c.map { $0 / total } : c)
        }
        let ymax = max(1e-12, counts.flatMap { $0 }.max() ?? 1)
        var body = ""
        for (k, s) in series.enumerated() {
            var path = "M \(px(0, lo, hi)) \(py(0, ymax))"
            for b in 0..<bins {
                let x0 = lo + Double(b) * width, x1 = x0 + width
                path += " L \(px(x0, lo, hi)) \(py(counts[k][b], ymax)) L \(px(x1, lo, hi)) \(py(counts[k][b], ymax))"
            }
            path += " L \(px(hi, lo, hi)) \(py(0, ymax)) Z"
            body += "<path d=\"\(path)\" fill=\"\(s.color)\" fill-opacity=\"0.25\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>\n"
        }
        return frame(title: title, xLabel: xLabel, yLabel: density ? "fraction of samples" : "count",
                     xRange: (lo, hi), yMax: ymax, body: body, legend: series.map { ($0.name, $0.color) })
    }

    /// Curves given as (x, y) points in [0, 1] x [0, 1] (e.g. ROC), with a diagonal reference.
    public static func curves(title: String, xLabel: String, yLabel: String,
                              curves: [(name: String, color: String, points: [(Double, Double)])]) -> String {
        var body = "<line x1=\"\(px(0, 0, 1))\" y1=\"\(py(0, 1))\" x2=\"\(px(1, 0, 1))\" y2=\"\(py(1, 1))\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>\n"
        for c in curves {
            let d = c.points.enumerated().map { i, p in "\(i == 0 ? "M" : "L") \(px(p.0, 0, 1)) \(py(p.1, 1))" }.joined(separator: " ")
            body += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(c.color)\" stroke-width=\"1.8\"/>\n"
        }
        return frame(title: title, xLabel: xLabel, yLabel: yLabel, xRange: (0, 1), yMax: 1, body: body,
                     legend: curves.map { ($0.name, $0.color) })
    }

    /// A polyline of (x, y) points for ``panels(title:xLabel:panels:marker:)``.
    public struct Line {
        public var name: String
        public var color: String
        public var points: [(Double, Double)]
        public var dashed: Bool
        public init(name: String, color: String, points: [(Double, Double)], dashed: Bool = false) {
            self.name = name
            self.color = color
            self.points = points
            self.dashed = dashed
        }
    }

    /// One panel: its y label, its lines and a fixed y range (nil = from the data).
    public struct Panel {
        public var yLabel: String
        public var lines: [Line]
        public var yRange: ClosedRange<Double>?
        public init(yLabel: String, lines: [Line], yRange: ClosedRange<Double>?) {
            self.yLabel = yLabel
            self.lines = lines
            self.yRange = yRange
        }
    }

    /// Panels stacked vertically over a shared x axis (e.g. metrics and losses against the
    /// epoch), each with its own y axis and legend; an optional vertical marker (x, label)
    /// crosses every panel. Lines with no point are left out of the legend.
    public static func panels(title: String, xLabel: String, panels: [Panel], marker: (Double, String)? = nil) -> String {
        let panelH = 220.0, gap = 50.0
        let xs = panels.flatMap { $0.lines.flatMap { $0.points.map(\.0) } }
        var xlo = xs.min() ?? 0, xhi = xs.max() ?? 1
        if xhi <= xlo { xhi = xlo + 1 }
        if let m = marker { xlo = min(xlo, m.0); xhi = max(xhi, m.0) }
        let height = top + Double(panels.count) * (panelH + gap) + 20
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + plotW + 210))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"24\" font-size=\"15\">\(escape(title))</text>\n"
        func fx(_ x: Double) -> Double { left + (x - xlo) / (xhi - xlo) * plotW }
        for (p, panel) in panels.enumerated() {
            let y0 = top + Double(p) * (panelH + gap)
            let ys = panel.lines.flatMap { $0.points.map(\.1) }
            var ylo = panel.yRange?.lowerBound ?? (ys.min() ?? 0), yhi = panel.yRange?.upperBound ?? (ys.max() ?? 1)
            if panel.yRange == nil {
                let pad = max(1e-9, 0.05 * (yhi - ylo))
                ylo = max(0, ylo - pad)
                yhi += pad
            }
            if yhi <= ylo { yhi = ylo + 1 }
            func fy(_ y: Double) -> Double { y0 + panelH - (y - ylo) / (yhi - ylo) * panelH }
            s += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotW)\" height=\"\(panelH)\" fill=\"none\" stroke=\"#333\"/>\n"
            for i in 0...4 {
                let f = Double(i) / 4
                let y = y0 + panelH - f * panelH
                s += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + plotW)\" y2=\"\(y)\" stroke=\"#eee\"/>"
                s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.3g", ylo + f * (yhi - ylo)))</text>\n"
                let x = left + f * plotW
                s += "<line x1=\"\(x)\" y1=\"\(y0 + panelH)\" x2=\"\(x)\" y2=\"\(y0 + panelH + 5)\" stroke=\"#333\"/>"
                s += "<text x=\"\(x)\" y=\"\(y0 + panelH + 18)\" text-anchor=\"middle\">\(String(format: "%.3g", xlo + f * (xhi - xlo)))</text>\n"
            }
            s += "<text transform=\"translate(16 \(y0 + panelH / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(panel.yLabel))</text>\n"
            var legend = 0
            for line in panel.lines where !line.points.isEmpty {
                let d = line.points.enumerated().map { i, q in
                    "\(i == 0 ? "M" : "L") \(String(format: "%.2f", fx(q.0))) \(String(format: "%.2f", fy(min(max(q.1, ylo), yhi))))"
                }.joined(separator: " ")
                s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.8\"\(line.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
                for q in line.points {
                    s += "<circle cx=\"\(String(format: "%.2f", fx(q.0)))\" cy=\"\(String(format: "%.2f", fy(min(max(q.1, ylo), yhi))))\" r=\"2.2\" fill=\"\(line.color)\"/>"
                }
                s += "\n"
                let ly = y0 + 10 + Double(legend) * 18
                s += "<line x1=\"\(left + plotW + 12)\" y1=\"\(ly + 6)\" x2=\"\(left + plotW + 30)\" y2=\"\(ly + 6)\" stroke=\"\(line.color)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
                s += "<text x=\"\(left + plotW + 36)\" y=\"\(ly + 10)\">\(escape(line.name))</text>\n"
                legend += 1
            }
            if let m = marker {
                s += "<line x1=\"\(fx(m.0))\" y1=\"\(y0)\" x2=\"\(fx(m.0))\" y2=\"\(y0 + panelH)\" stroke=\"#000\" stroke-dasharray=\"2 3\"/>\n"
                if p == 0 { s += "<text x=\"\(fx(m.0) + 4)\" y=\"\(y0 - 4)\">\(escape(m.1))</text>\n" }
            }
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        return s + "</svg>\n"
    }

    static let plotW = 560.0, plotH = 320.0, left = 70.0, top = 40.0

    static func px(_ x: Double, _ lo: Double, _ hi: Double) -> String {
        String(format: "%.2f", left + (x - lo) / (hi - lo) * plotW)
    }

    static func py(_ y: Double, _ ymax: Double) -> String {
        String(format: "%.2f", top + plotH - y / ymax * plotH)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func frame(title: String, xLabel: String, yLabel: String, xRange: (Double, Double), yMax: Double,
                      body: String, legend: [(String, String)]) -> String {
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + plotW + 190))\" height=\"\(Int(top + plotH + 60))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"24\" font-size=\"15\">\(escape(title))</text>\n"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#333\"/>\n"
        for i in 0...4 {
            let fx = Double(i) / 4
            let xv = xRange.0 + fx * (xRange.1 - xRange.0)
            let x = left + fx * plotW
            s += "<line x1=\"\(x)\" y1=\"\(top + plotH)\" x2=\"\(x)\" y2=\"\(top + plotH + 5)\" stroke=\"#333\"/>"
            s += "<text x=\"\(x)\" y=\"\(top + plotH + 18)\" text-anchor=\"middle\">\(String(format: "%.3g", xv))</text>\n"
            let y = top + plotH - fx * plotH
            s += "<line x1=\"\(left - 5)\" y1=\"\(y)\" x2=\"\(left)\" y2=\"\(y)\" stroke=\"#333\"/>"
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.3g", fx * yMax))</text>\n"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(top + plotH + 40)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(16 \(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        s += body
        for (i, (name, color)) in legend.enumerated() {
            let y = top + 10 + Double(i) * 18
            s += "<rect x=\"\(left + plotW + 12)\" y=\"\(y)\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
            s += "<text x=\"\(left + plotW + 30)\" y=\"\(y + 10)\">\(escape(name))</text>\n"
        }
        return s + "</svg>\n"
    }
}
