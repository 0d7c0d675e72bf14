package sqlite

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	lib "modernc.org/sqlite/lib"
)

// walBufVFS is the name of a SQLite VFS that is the default one except that
// writes to a WAL file are gathered in memory and written with one pwrite
// when SQLite next syncs, reads or sizes that file, and that WAL and
// database files are synced with fdatasync on Linux (dataSync).
//
// Why: SQLite writes each WAL frame with two pwrite calls (24-byte header,
// then the page), and an Append dirties a page or more per message in the
// inbox B-trees, so a commit of 64 messages made a hundred-odd pwrites, at
// ~3µs each in a VM: a fifth of the CPU of BenchmarkDurableSend. Gathered,
// a commit is one write and one fsync.
//
// Why it is safe with SyncFull, and only with it: frames become visible to
// other connections, and durable, only at commit, and with synchronous=FULL
// SQLite syncs the WAL (xSync, which writes the buffer out first, reporting
// any error) before it publishes the commit in the wal-index. What is still
// buffered when the process dies is an uncommitted tail, which recovery
// ignores as it would a torn write. With synchronous=NORMAL there is no
// sync at commit, so Open uses this VFS only with SyncFull.
const walBufVFS = "courier-walbuf"

// walBufMax bounds the buffer of one WAL file; a transaction writing more
// (a migration, say) writes out each time it fills.
const walBufMax = 8 << 20

var walBuf struct {
	once sync.Once
	err  error
	tls  *libc.TLS // registration's; kept, as the VFS is never unregistered

	// unixFiles: the default VFS is SQLite's "unix", whose files are
	// lib.TunixFile (dataSync reads their descriptor)
	unixFiles bool

	mu      sync.Mutex
	files   map[uintptr]*walFile // open WAL files, by sqlite3_file pointer
	methods map[uintptr]uintptr  // default io methods -> our wrapper of them

	// The database file's methods are the default ones with xSync
	// replaced (dbSync), by the default's pointer and back.
	dbMethods map[uintptr]uintptr
	dbOrig    map[uintptr]uintptr
}

// dataSyncs counts the syncs made by dataSync, of WAL and of database
// files, for tests.
var dataSyncs struct{ wal, db atomic.Int64 }

// walFile is the buffer of one open WAL file: buf[:n] goes at offset off.
type walFile struct {
	orig uintptr // the default VFS's sqlite3_io_methods
	buf  uintptr // C memory, capacity size
	size int
	n    int
	off  int64
}

type (
	xOpenFn     = func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32
	xCloseFn    = func(*libc.TLS, uintptr) int32
	xRWFn       = func(*libc.TLS, uintptr, uintptr, int32, int64) int32
	xTruncateFn = func(*libc.TLS, uintptr, int64) int32
	xSyncFn     = func(*libc.TLS, uintptr, int32) int32
	xFileSizeFn = func(*libc.TLS, uintptr, uintptr) int32
)

// fn turns a C function pointer, as the transpiled SQLite stores it, into a
// Go func of type F.
func fn[F any](p uintptr) F { return *(*F)(unsafe.Pointer(&struct{ uintptr }{p})) }

// ptr converts the address of C memory (from modernc.org/libc's allocator
// or SQLite, never the Go heap) to a pointer.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// setFn stores f in the C function pointer at dst.
func setFn[F any](dst *uintptr, f F) { *(*F)(unsafe.Pointer(dst)) = f }

// registerWALBuf registers walBufVFS once per process.
func registerWALBuf() error {
	walBuf.once.Do(func() {
		walBuf.files = make(map[uintptr]*walFile)
		walBuf.methods = make(map[uintptr]uintptr)
		walBuf.dbMethods = make(map[uintptr]uintptr)
		walBuf.dbOrig = make(map[uintptr]uintptr)
		tls := libc.NewTLS()
		walBuf.tls = tls
		base := lib.Xsqlite3_vfs_find(tls, 0)
		if base == 0 {
			walBuf.err = fmt.Errorf("register vfs %s: no default vfs", walBufVFS)
			return
		}
		vfs := libc.Xcalloc(tls, 1, types.Size_t(unsafe.Sizeof(lib.Tsqlite3_vfs{})))
		name, err := libc.CString(walBufVFS)
		if vfs == 0 || err != nil {
			walBuf.err = fmt.Errorf("register vfs %s: out of memory", walBufVFS)
			return
		}
		v := (*lib.Tsqlite3_vfs)(ptr(vfs))
		*v = *(*lib.Tsqlite3_vfs)(ptr(base))
		walBuf.unixFiles = libc.GoString(v.FzName) == "unix"
		v.FpNext, v.FzName, v.FpAppData = 0, name, base
		setFn[xOpenFn](&v.FxOpen, walBufOpen)
		if rc := lib.Xsqlite3_vfs_register(tls, vfs, 0); rc != lib.SQLITE_OK {
			walBuf.err = fmt.Errorf("register vfs %s: code %d", walBufVFS, rc)
		}
	})
	return walBuf.err
}

// walBufOpen is xOpen: the default VFS's, then for a WAL file our methods
// in place of its own, and for a database file our xSync.
func walBufOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	base := (*lib.Tsqlite3_vfs)(ptr(pVfs)).FpAppData
	rc := fn[xOpenFn]((*lib.Tsqlite3_vfs)(ptr(base)).FxOpen)(tls, base, zName, pFile, flags, pOutFlags)
	f := (*lib.Tsqlite3_file)(ptr(pFile))
	if rc != lib.SQLITE_OK || f.FpMethods == 0 {
		return rc
	}
	if flags&lib.SQLITE_OPEN_MAIN_DB != 0 {
		wrapDB(tls, f)
		return rc
	}
	if flags&lib.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	walBuf.mu.Lock()
	defer walBuf.mu.Unlock()
	orig := f.FpMethods
	wrapped := wrapMethods(tls, walBuf.methods, orig, func(m *lib.Tsqlite3_io_methods) {
		setFn[xCloseFn](&m.FxClose, walBufClose)
		setFn[xRWFn](&m.FxRead, walBufRead)
		setFn[xRWFn](&m.FxWrite, walBufWrite)
		setFn[xTruncateFn](&m.FxTruncate, walBufTruncate)
		setFn[xSyncFn](&m.FxSync, walBufSync)
		setFn[xFileSizeFn](&m.FxFileSize, walBufFileSize)
	})
	if wrapped == 0 {
		return rc // unbuffered, then
	}
	walBuf.files[pFile] = &walFile{orig: orig}
	f.FpMethods = wrapped
	return rc
}

// wrapDB gives the database file f the default methods with dbSync as its
// xSync: a checkpoint's sync of the database file is then an fdatasync too
// (see dataSync), as in SQLite built for Linux anywhere else.
func wrapDB(tls *libc.TLS, f *lib.Tsqlite3_file) {
	walBuf.mu.Lock()
	defer walBuf.mu.Unlock()
	orig := f.FpMethods
	wrapped := wrapMethods(tls, walBuf.dbMethods, orig, func(m *lib.Tsqlite3_io_methods) {
		setFn[xSyncFn](&m.FxSync, dbSync)
	})
	if wrapped == 0 {
		return // synced by the default, then
	}
	walBuf.dbOrig[wrapped] = orig
	f.FpMethods = wrapped
}

// wrapMethods returns the copy of the io methods orig that set has changed,
// made once per orig and kept in made; 0 when out of memory. walBuf.mu is
// held.
func wrapMethods(tls *libc.TLS, made map[uintptr]uintptr, orig uintptr, set func(*lib.Tsqlite3_io_methods)) uintptr {
	if wrapped := made[orig]; wrapped != 0 {
		return wrapped
	}
	wrapped := libc.Xmalloc(tls, types.Size_t(unsafe.Sizeof(lib.Tsqlite3_io_methods{})))
	if wrapped == 0 {
		return 0
	}
	m := (*lib.Tsqlite3_io_methods)(ptr(wrapped))
	*m = *(*lib.Tsqlite3_io_methods)(ptr(orig))
	set(m)
	made[orig] = wrapped
	return wrapped
}

func dbSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc, ok := dataSync(pFile); ok {
		dataSyncs.db.Add(1)
		return rc
	}
	walBuf.mu.Lock()
	orig := walBuf.dbOrig[(*lib.Tsqlite3_file)(ptr(pFile)).FpMethods]
	walBuf.mu.Unlock()
	return fn[xSyncFn]((*lib.Tsqlite3_io_methods)(ptr(orig)).FxSync)(tls, pFile, flags)
}

func walFileOf(pFile uintptr) *walFile {
	walBuf.mu.Lock()
	defer walBuf.mu.Unlock()
	return walBuf.files[pFile]
}

func (w *walFile) methods() *lib.Tsqlite3_io_methods {
	return (*lib.Tsqlite3_io_methods)(ptr(w.orig))
}

// walWriteMax is the most the default VFS writes at once: its unix xWrite
// masks the length with 0x1ffff.
const walWriteMax = 120 << 10

// flush writes the buffer out, in as few writes as the default VFS allows.
func (w *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	write := fn[xRWFn](w.methods().FxWrite)
	for at := 0; at < w.n; at += walWriteMax {
		n := min(w.n-at, walWriteMax)
		if rc := write(tls, pFile, w.buf+uintptr(at), int32(n), w.off+int64(at)); rc != lib.SQLITE_OK {
			w.n = 0
			return rc
		}
	}
	w.n = 0
	return lib.SQLITE_OK
}

func walBufWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := walFileOf(pFile)
	end := w.off + int64(w.n)
	if w.n > 0 && (iOfst < w.off || iOfst > end) {
		if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
			return rc
		}
	}
	if w.n == 0 {
		w.off = iOfst
	}
	need := int(iOfst-w.off) + int(iAmt)
	if need > w.size {
		if need > walBufMax {
			if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
				return rc
			}
			return fn[xRWFn](w.methods().FxWrite)(tls, pFile, zBuf, iAmt, iOfst) // SQLite writes a page at most
		}
		size := max(need, 2*w.size, 256<<10)
		p := libc.Xrealloc(tls, w.buf, types.Size_t(size))
		if p == 0 {
			return lib.SQLITE_NOMEM
		}
		w.buf, w.size = p, size
	}
	at := int(iOfst - w.off)
	copy(unsafe.Slice((*byte)(ptr(w.buf+uintptr(at))), iAmt), unsafe.Slice((*byte)(ptr(zBuf)), iAmt))
	w.n = max(w.n, at+int(iAmt))
	return lib.SQLITE_OK
}

func walBufRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := walFileOf(pFile)
	if w.n > 0 && iOfst < w.off+int64(w.n) && iOfst+int64(iAmt) > w.off {
		if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
			return rc
		}
	}
	return fn[xRWFn](w.methods().FxRead)(tls, pFile, zBuf, iAmt, iOfst)
}

func walBufSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	w := walFileOf(pFile)
	if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
		return rc
	}
	if rc, ok := dataSync(pFile); ok {
		dataSyncs.wal.Add(1)
		return rc
	}
	return fn[xSyncFn](w.methods().FxSync)(tls, pFile, flags)
}

func walBufTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	w := walFileOf(pFile)
	if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
		return rc
	}
	return fn[xTruncateFn](w.methods().FxTruncate)(tls, pFile, size)
}

func walBufFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	w := walFileOf(pFile)
	if rc := w.flush(tls, pFile); rc != lib.SQLITE_OK {
		return rc
	}
	return fn[xFileSizeFn](w.methods().FxFileSize)(tls, pFile, pSize)
}

func walBufClose(tls *libc.TLS, pFile uintptr) int32 {
	w := walFileOf(pFile)
	rc := w.flush(tls, pFile)
	if w.buf != 0 {
		libc.Xfree(tls, w.buf)
	}
	walBuf.mu.Lock()
	delete(walBuf.files, pFile)
	walBuf.mu.Unlock()
	if rc2 := fn[xCloseFn](w.methods().FxClose)(tls, pFile); rc == lib.SQLITE_OK {
		rc = rc2
	}
	return rc
}
