#if canImport(Glibc)
@preconcurrency import Glibc
#endif

@inline(__always)
func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}
