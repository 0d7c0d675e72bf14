package sqlite

import (
	"sync/atomic"
	"syscall"

	lib "modernc.org/sqlite/lib"
)

// dataSyncs counts the WAL syncs done by dataSync, for tests.
var dataSyncs atomic.Int64

// dataSync syncs a WAL file of the default unix VFS with fdatasync instead
// of the fsync that modernc's SQLite always makes (it is built without
// HAVE_FDATASYNC). ok is false when the default xSync must run instead:
// for the first sync of a new WAL, which also syncs its directory.
//
// Why: SQLite's own os_unix.c uses fdatasync wherever it exists, and says
// why that is always enough: fdatasync writes the inode too when the size
// has changed, and only leaves out times and owners, which SQLite never
// reads back. On ext4, fsync of a WAL that was overwritten in place still
// commits the journal for its mtime, and a journal commit waits for any
// other file's fsync in progress: at fixed rates a commit's sync waited
// behind a checkpoint's fsync of the database file (docs/benchmarks.md,
// "Quiet hours, and where the durable tail comes from").
func dataSync(pFile uintptr) (rc int32, ok bool) {
	if !walBuf.unixFiles {
		return 0, false
	}
	f := (*lib.TunixFile)(ptr(pFile))
	if f.FctrlFlags&lib.UNIXFILE_DIRSYNC != 0 {
		return 0, false
	}
	for {
		err := syscall.Fdatasync(int(f.Fh))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			f.FlastErrno = int32(err.(syscall.Errno))
			return lib.SQLITE_IOERR_FSYNC, true
		}
		dataSyncs.Add(1)
		return lib.SQLITE_OK, true
	}
}
