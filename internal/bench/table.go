package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// columns lists what a scenario reports, in order.
var columns = map[string][]string{
	"idle":      {"conns", "connect/s", "rss/conn KiB", "server RSS MiB", "closed"},
	"broadcast": {"conns", "pushes", "deliveries", "lost", "dups", "deliveries/s", "CPU-s/M", "p50 ms", "p99 ms", "max ms"},
	"latency":   {"conns", "pushes", "pushes/s", "lost", "dups", "p50 ms", "p99 ms", "p999 ms", "max ms", "CPU-s/M", "client CPU-s/M"},
	"unicast":   {"conns", "pushes", "pushes/s", "CPU µs/push", "api p50 ms", "api p99 ms", "deliveries/s", "lost", "dups", "p99 ms", "max ms"},
	"churn":     {"conns", "connect/s", "mass disconnect s"},
	"resume":    {"pushes", "stored/s", "resume ms", "lost", "dups"},
	"webhooks":  {"conns", "events", "lost", "dups", "events/s", "drain s"},
	"workload": {"nodes", "conns", "joins", "connect/s", "msgs/s in", "deliveries/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
		"lost", "dups", "server CPU", "server RSS MiB"},
	"knee": {"nodes", "conns", "knee pushes/s", "knee deliveries/s", "knee p99 ms", "next pushes/s", "next p99 ms"},
}

func (r Result) cell(col string) float64 {
	return map[string]float64{
		"conns": float64(r.Conns), "connect/s": r.ConnectPerSec, "rss/conn KiB": r.RSSPerConnKiB,
		"server RSS MiB": r.ServerRSSMiB, "closed": float64(r.Lost), "pushes": float64(r.Pushes),
		"deliveries": float64(r.Deliveries), "lost": float64(r.Lost), "dups": float64(r.Dups),
		"deliveries/s": r.DeliveriesPerS, "CPU-s/M": r.CPUPerMillion, "client CPU-s/M": r.ClientCPUPerM, "p50 ms": r.P50ms, "p99 ms": r.P99ms,
		"p999 ms": r.P999ms, "max ms": r.Maxms, "pushes/s": r.PushesPerSec, "api p50 ms": r.APIP50ms,
		"api p99 ms": r.APIP99ms, "CPU µs/push": r.CPUPerPushUS, "mass disconnect s": r.DisconnectS, "stored/s": r.PushesPerSec, "resume ms": r.ResumeMS,
		"events": float64(r.Deliveries), "events/s": r.DeliveriesPerS, "drain s": r.DrainS,
		"nodes": float64(r.Nodes), "joins": float64(r.Joins), "msgs/s in": r.PushesPerSec, "p95 ms": r.P95ms,
		"server CPU":    r.ServerCPU,
		"knee pushes/s": r.Knee.get().PushesPerSec, "knee deliveries/s": r.Knee.get().DeliveriesPerS,
		"knee p99 ms": r.Knee.get().P99ms, "next pushes/s": r.Over.get().PushesPerSec, "next p99 ms": r.Over.get().P99ms,
	}[col]
}

// WriteTable prints one row per run and a median row.
func WriteTable(w io.Writer, results []Result) {
	if len(results) == 0 {
		return
	}
	cols := columns[results[0].Scenario]
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "run\t%s\t\n", strings.Join(cols, "\t"))
	for i, r := range results {
		fmt.Fprintf(tw, "%d", i+1)
		for _, c := range cols {
			fmt.Fprintf(tw, "\t%s", format(r.cell(c)))
		}
		fmt.Fprintln(tw, "\t")
	}
	if len(results) > 1 {
		fmt.Fprint(tw, "median")
		for _, c := range cols {
			vals := make([]float64, len(results))
			for i, r := range results {
				vals[i] = r.cell(c)
			}
			sort.Float64s(vals)
			fmt.Fprintf(tw, "\t%s", format(vals[len(vals)/2]))
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
