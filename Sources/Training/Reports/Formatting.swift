import Foundation

// Number formatting shared by the run logs, reports and commands of this package (one place,
// so every table prints the same digits).

/// `x` with `digits` decimals (`fmt(0.12345, 3)` = "0.123").
package func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// `x` with 6 decimals (losses in nats).
package func f6(_ x: Double) -> String { String(format: "%.6f", x) }

/// A fraction as a percentage with 2 decimals and a `%` sign (`pct(0.5)` = "50.00%").
package func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }

/// `s` padded with spaces to at least `n` characters (one space after a full-width `s`).
package func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
