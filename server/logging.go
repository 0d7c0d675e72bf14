package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lesismal/nbio/logging"
)

// nbioLogger sends nbio's own logs to slog, a level lower than nbio gives
// them: its info lines (engine start) are debug detail for courier.
type nbioLogger struct{ log *slog.Logger }

func (l nbioLogger) SetLevel(int) {}
func (l nbioLogger) Debug(format string, v ...any) {
	l.emit(slog.LevelDebug-4, format, v)
}
func (l nbioLogger) Info(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l nbioLogger) Warn(format string, v ...any)  { l.emit(slog.LevelWarn, format, v) }
func (l nbioLogger) Error(format string, v ...any) { l.emit(slog.LevelError, format, v) }

func (l nbioLogger) emit(level slog.Level, format string, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nbio")
	}
}

func setNBIOLogger(log *slog.Logger) { logging.SetLogger(nbioLogger{log}) }
