// The read-only web dashboard: routes added to the server's one HTTP endpoint
// (metrics_http.h, the metrics port) beside /metrics.
//
//   GET /                          the audits, with state and progress
//   GET /audits/<id>               one audit: progress; once SUCCEEDED its
//                                  report.html inline and its files to download
//   GET /audits/<id>/<file>        a file of its report folder
//   GET /api/audits                JSON: the audits (BASIC view, no result)
//   GET /api/audits/<id>           JSON: one audit (BASIC view)
//   GET /api/audits/<id>/files     JSON: its report files (ListReportFiles)
//
// Everything is read through the AuditBackend, as the gRPC methods read it
// (same job store, same state and progress, same confinement of report files
// to the audit's folder): there is no second source of truth. The pages are
// self-contained (inline CSS and script, nothing from a CDN) and refresh by
// polling the JSON endpoints every 1.5 s: the HTTP server ends every
// connection at a whole-request deadline, so server-sent events (one
// long-lived connection per viewer) do not fit it, and polling a few hundred
// bytes is cheap.
//
// Auth: every route that returns data goes through DashboardOptions::authorize
// (the gRPC API's Authenticator: same tokens, JWTs and tenants; the caller
// sees only its tenant's audits, as over gRPC). With auth on, the two HTML
// pages carry no data and are served to anyone; they show a token form, keep
// the token in the tab's sessionStorage and send it as an Authorization
// header with fetch (never in a URL); report files are fetched the same way
// and shown from blob: URLs in a sandboxed frame.
//
// Thread-safety: the handlers run on the HTTP server's thread; the backend is
// safe from any thread.
#ifndef MIA_SERVER_DASHBOARD_H_
#define MIA_SERVER_DASHBOARD_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/auth.h"
#include "server/metrics_http.h"

namespace mia::server {

class AuditBackend;

struct DashboardOptions {
  // Largest report file served over HTTP; larger ones are refused (413) and
  // are downloaded with `mia report` (gRPC, streamed in chunks). The whole
  // file is held in memory while it is sent.
  int64_t max_file_bytes = int64_t{64} << 20;
  // Most audits /api/audits lists (the oldest first, as ListAudits pages
  // them); "truncated" is true when there are more.
  int max_audits = 1000;
  // Called before every data route: the caller lets the request through;
  // UNAUTHENTICATED (401) or PERMISSION_DENIED (403) refuse it. Null: no
  // auth (every caller sees every audit).
  std::function<absl::StatusOr<Caller>(const HttpRequest&)> authorize;
};

// Adds the dashboard's routes to `routes`. `backend` is not owned and must
// outlive the HTTP server that serves them.
void AddDashboardRoutes(AuditBackend* backend, const DashboardOptions& options,
                        HttpRoutes* routes);

}  // namespace mia::server

#endif  // MIA_SERVER_DASHBOARD_H_
