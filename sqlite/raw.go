package sqlite

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	lib "modernc.org/sqlite/lib"
)

// rawConn is one SQLite connection driven through the C API that
// modernc.org/sqlite/lib exports, without database/sql and the driver: the
// store's writer. An Append binds a few thousand parameters; through
// database/sql each was boxed in an interface, converted, and bound by the
// driver with a C string allocated, copied and freed, behind a mutex per
// call. Here an integer is bound as it is and all text of a batch is copied
// once into an arena that lives until the next batch.
//
// A rawConn is not safe for concurrent use; the Store serializes it with
// its mutex, which is also why it is opened without SQLite's own mutex.
type rawConn struct {
	tls   *libc.TLS
	db    uintptr
	arena arena
}

// errRaw is the error of a SQLite call.
type errRaw struct {
	code int32 // extended result code
	msg  string
}

func (e *errRaw) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.code) }

func openRaw(path, vfs string, busy time.Duration) (*rawConn, error) {
	tls := libc.NewTLS()
	c := &rawConn{tls: tls, arena: arena{tls: tls}}
	cpath, err := libc.CString(path)
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer libc.Xfree(tls, cpath)
	var cvfs uintptr
	if vfs != "" {
		if cvfs, err = libc.CString(vfs); err != nil {
			tls.Close()
			return nil, err
		}
		defer libc.Xfree(tls, cvfs)
	}
	pdb := tls.Alloc(8)
	defer tls.Free(8)
	flags := int32(lib.SQLITE_OPEN_READWRITE | lib.SQLITE_OPEN_CREATE | lib.SQLITE_OPEN_NOMUTEX | lib.SQLITE_OPEN_EXRESCODE)
	rc := lib.Xsqlite3_open_v2(tls, cpath, pdb, flags, cvfs)
	c.db = *(*uintptr)(ptr(pdb))
	if rc != lib.SQLITE_OK {
		err := c.err(rc)
		c.close()
		return nil, err
	}
	lib.Xsqlite3_busy_timeout(tls, c.db, int32(busy.Milliseconds()))
	return c, nil
}

// err returns the error of result code rc, with the connection's message.
func (c *rawConn) err(rc int32) error {
	msg := libc.GoString(lib.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if ext := lib.Xsqlite3_extended_errcode(c.tls, c.db); ext&0xff == rc&0xff {
			rc, msg = ext, libc.GoString(lib.Xsqlite3_errmsg(c.tls, c.db))
		}
	}
	return &errRaw{code: rc, msg: msg}
}

// exec runs one or more statements that return nothing of interest.
func (c *rawConn) exec(sql string) error {
	csql, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, csql)
	if rc := lib.Xsqlite3_exec(c.tls, c.db, csql, 0, 0, 0); rc != lib.SQLITE_OK {
		return c.err(rc)
	}
	return nil
}

// prepare compiles one statement, to be kept.
func (c *rawConn) prepare(sql string) (*rawStmt, error) {
	csql, err := libc.CString(sql)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, csql)
	pp := c.tls.Alloc(8)
	defer c.tls.Free(8)
	if rc := lib.Xsqlite3_prepare_v3(c.tls, c.db, csql, -1, lib.SQLITE_PREPARE_PERSISTENT, pp, 0); rc != lib.SQLITE_OK {
		return nil, c.err(rc)
	}
	return &rawStmt{c: c, p: *(*uintptr)(ptr(pp))}, nil
}

// queryInt runs a statement that returns one row of integers into dst; a
// statement that returns no row leaves dst as it is and reports false.
func (c *rawConn) queryInt(st *rawStmt, dst ...*int64) (bool, error) {
	row, err := st.step()
	if row {
		for i, d := range dst {
			*d = st.int(i)
		}
	}
	if rerr := st.reset(); err == nil {
		err = rerr
	}
	return row, err
}

func (c *rawConn) close() error {
	var err error
	if c.db != 0 {
		if rc := lib.Xsqlite3_close_v2(c.tls, c.db); rc != lib.SQLITE_OK {
			err = c.err(rc)
		}
		c.db = 0
	}
	c.arena.free()
	c.tls.Close()
	return err
}

// rawStmt is a prepared statement of a rawConn. Parameters are numbered
// from 1, result columns from 0, as in the C API.
type rawStmt struct {
	c   *rawConn
	p   uintptr
	err error // the first failed bind since the last step, which step returns
}

func (s *rawStmt) check(rc int32) {
	if rc != lib.SQLITE_OK && s.err == nil {
		s.err = fmt.Errorf("bind: %w", s.c.err(rc))
	}
}

func (s *rawStmt) bindInt(i int, v int64) {
	s.check(lib.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v))
}

func (s *rawStmt) bindNull(i int) { s.check(lib.Xsqlite3_bind_null(s.c.tls, s.p, int32(i))) }

// bindText binds v, copied into the connection's arena: it stays bound
// until the arena is reset, which the caller does only once the statement
// has run (see arena).
func (s *rawStmt) bindText(i int, v string) {
	p := s.c.arena.copy(v)
	if p == 0 {
		if s.err == nil {
			s.err = errors.New("bind: out of memory")
		}
		return
	}
	s.check(lib.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), p, int32(len(v)), 0)) // 0: SQLITE_STATIC
}

// step runs the statement to its next row; false means it is done.
func (s *rawStmt) step() (bool, error) {
	if err := s.err; err != nil {
		s.err = nil
		return false, err
	}
	switch rc := lib.Xsqlite3_step(s.c.tls, s.p); rc {
	case lib.SQLITE_ROW:
		return true, nil
	case lib.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.err(rc)
	}
}

// exec runs a statement that returns no rows and resets it.
func (s *rawStmt) exec() error {
	_, err := s.step()
	if rerr := s.reset(); err == nil {
		err = rerr
	}
	return err
}

// reset makes the statement ready to run again; it keeps the bindings.
func (s *rawStmt) reset() error {
	if rc := lib.Xsqlite3_reset(s.c.tls, s.p); rc != lib.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

func (s *rawStmt) int(i int) int64 { return lib.Xsqlite3_column_int64(s.c.tls, s.p, int32(i)) }

func (s *rawStmt) text(i int) string {
	p := lib.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := lib.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(ptr(p)), n))
}

func (s *rawStmt) close() error {
	if s == nil || s.p == 0 {
		return nil
	}
	rc := lib.Xsqlite3_finalize(s.c.tls, s.p)
	s.p = 0
	if rc != lib.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// arena is C memory for the text bound during one Append: chunks that are
// never moved, so what is bound stays put, and are reused from the start
// by reset.
type arena struct {
	tls    *libc.TLS
	chunks []arenaChunk
	cur    int // chunk being filled
}

type arenaChunk struct {
	p       uintptr
	size, n int
}

const arenaChunkSize = 256 << 10

// copy copies s into the arena and returns its address, 0 when out of
// memory. "" takes a byte too: bound from a NULL pointer it would be NULL.
func (a *arena) copy(s string) uintptr {
	need := max(len(s), 1)
	for a.cur < len(a.chunks) && a.chunks[a.cur].size-a.chunks[a.cur].n < need {
		a.cur++
	}
	if a.cur == len(a.chunks) {
		size := max(need, arenaChunkSize)
		p := libc.Xmalloc(a.tls, types.Size_t(size))
		if p == 0 {
			return 0
		}
		a.chunks = append(a.chunks, arenaChunk{p: p, size: size})
	}
	c := &a.chunks[a.cur]
	p := c.p + uintptr(c.n)
	copy(unsafe.Slice((*byte)(ptr(p)), len(s)), s)
	c.n += need
	return p
}

// reset reuses the arena from the start. What was bound from it must not
// run again before it is bound anew.
func (a *arena) reset() {
	for i := range a.chunks[:min(a.cur+1, len(a.chunks))] {
		a.chunks[i].n = 0
	}
	a.cur = 0
}

func (a *arena) free() {
	for _, c := range a.chunks {
		libc.Xfree(a.tls, c.p)
	}
	a.chunks, a.cur = nil, 0
}
