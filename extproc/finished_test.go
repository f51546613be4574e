package extproc

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantaseal/gateway/policy"
)

// TestFinishedLogLevel checks the per-call log line: an allowed, successful call is
// logged at Debug only (the hot path of a gateway logging at Info formats nothing),
// while a denial, an upstream error or an aborted call stays visible at Info.
func TestFinishedLogLevel(t *testing.T) {
	tests := []struct {
		name     string
		level    slog.Level
		decision string
		code     string
		want     string // the level of the logged line; "" = nothing logged
	}{
		{"forwarded at info", slog.LevelInfo, decisionAllow, ReasonForwarded, ""},
		{"ok at info", slog.LevelInfo, decisionAllow, ReasonOK, ""},
		{"ok at debug", slog.LevelDebug, decisionAllow, ReasonOK, `"level":"DEBUG"`},
		{"deny at info", slog.LevelInfo, decisionDeny, CodeInsufficientScope, `"level":"INFO"`},
		{"upstream error at info", slog.LevelInfo, decisionAllow, CodeUpstreamError, `"level":"INFO"`},
		{"allowed then aborted at info", slog.LevelInfo, decisionAllow, ReasonAborted, `"level":"INFO"`},
		{"deny at warn", slog.LevelWarn, decisionDeny, CodeInsufficientScope, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			s := &Server{log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level})), metrics: m}
			c := &call{api: "ext_proc", mode: "transparent", requestID: "req-1",
				integ: Integration{ID: "int_1"}, op: policy.Operation{Name: "users.list"}, start: time.Now()}
			s.finished(t.Context(), c, tt.decision, tt.code)
			got := buf.String()
			if tt.want == "" {
				if got != "" {
					t.Fatalf("logged %q, want nothing", got)
				}
				return
			}
			for _, w := range []string{tt.want, `"msg":"call"`, `"decision":"` + tt.decision + `"`, `"code":"` + tt.code + `"`, `"request_id":"req-1"`} {
				if !strings.Contains(got, w) {
					t.Errorf("log %q lacks %s", got, w)
				}
			}
		})
	}
}
