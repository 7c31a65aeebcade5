// The reference for what a TestLayerSchedule's spec.schedule means: the cron
// package a Kubernetes CronJob uses (kube-controller-manager v1.34 uses
// github.com/robfig/cron/v3 v3.0.1), called as the CronJob machinery calls
// it. tests/cron_reference.rs compares our parser and next-tick walk with
// it.
//
// Reads JSON lines on stdin,
//
//	{"expr": "0 2 1 * 1", "tz": "Europe/Berlin", "from": "2026-03-29T00:30:00Z", "count": 10}
//
// and writes one JSON line per input line, in order:
//
//	{"ok": true, "next": ["2026-04-01T00:00:00Z", ...]}   (RFC 3339, UTC)
//	{"ok": false, "error": "..."}
//
// "next" holds up to count ticks, each the schedule's Next of the one
// before (the first of "from"); it stops early where Next gives up (the zero
// time: no tick within about five years).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

type request struct {
	Expr  string `json:"expr"`
	TZ    string `json:"tz"`
	From  string `json:"from"`
	Count int    `json:"count"`
}

type response struct {
	OK    bool     `json:"ok"`
	Next  []string `json:"next,omitempty"`
	Error string   `json:"error,omitempty"`
}

// parse parses spec with cron.ParseStandard, turning a panic (robfig
// slices past the end of "TZ=zone" without a space) into an error.
func parse(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return cron.ParseStandard(spec)
}

func answer(req request) response {
	// The apiserver's validation of a CronJob (pkg/apis/batch/validation):
	// spec.schedule parses on its own, and names no TZ (the time zone is
	// spec.timeZone).
	if strings.Contains(req.Expr, "TZ") {
		return response{Error: "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"}
	}
	if _, err := parse(req.Expr); err != nil {
		return response{Error: err.Error()}
	}
	// The controller (pkg/controller/cronjob formatSchedule): the time zone
	// as a prefix, then ParseStandard, then Next.
	spec := req.Expr
	if req.TZ != "" {
		spec = "TZ=" + req.TZ + " " + req.Expr
	}
	sched, err := parse(spec)
	if err != nil {
		return response{Error: err.Error()}
	}
	t, err := time.Parse(time.RFC3339Nano, req.From)
	if err != nil {
		return response{Error: "bad from: " + err.Error()}
	}
	next := []string{}
	for i := 0; i < req.Count; i++ {
		t = sched.Next(t)
		if t.IsZero() {
			break
		}
		next = append(next, t.UTC().Format(time.RFC3339Nano))
	}
	return response{OK: true, Next: next}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64*1024), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var resp response
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp = response{Error: "bad request: " + err.Error()}
		} else {
			resp = answer(req)
		}
		if err := enc.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
