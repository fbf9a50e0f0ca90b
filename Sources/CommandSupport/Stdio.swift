@preconcurrency import Glibc

/// Flushes C stdio's stdout (Swift's `print` writes through it). Errors go to stderr with
/// `writeToStandardError` (Distributed), unbuffered.
package func flushStandardOutput() { fflush(stdout) }
