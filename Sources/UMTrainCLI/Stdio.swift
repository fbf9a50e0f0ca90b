@preconcurrency import Glibc

/// Flushes C stdio's stdout (Swift's `print` writes through it).
func flushStandardOutput() { fflush(stdout) }

/// Writes to stderr, unbuffered.
func writeStandardError(_ text: String) { fputs(text, stderr) }
