//go:build !linux

package sqlite

// dataSync leaves every sync to the default VFS off Linux.
func dataSync(pFile uintptr) (rc int32, ok bool) { return 0, false }
