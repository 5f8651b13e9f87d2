#include "server/dashboard.h"

#include <fstream>
#include <memory>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/status_macros.h"
#include "core/report/svg_plot.h"
#include "google/protobuf/util/json_util.h"
#include "mia/v1/audit.pb.h"
#include "server/audit_backend.h"

namespace mia::server {
namespace {

// Scripts and styles are inline; data is fetched from this origin only; the
// report is framed from this origin only.
constexpr char kPagePolicy[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; frame-src 'self' blob:; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";
// A served report file runs nothing (report.html has no script) and may be
// framed only by the dashboard.
constexpr char kFilePolicy[] =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; "
    "frame-ancestors 'self'";

int HttpStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

// Backend messages name audits and fields, never data or server paths.
HttpResponse Error(const absl::Status& status) {
  HttpResponse r;
  r.status = HttpStatus(status);
  r.body = absl::StrCat(status.message(), "\n");
  r.headers.push_back({"Cache-Control", "no-store"});
  if (r.status == 401) r.headers.push_back({"WWW-Authenticate", "Bearer"});
  return r;
}

HttpResponse Json(std::string body) {
  HttpResponse r;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

HttpResponse Page(std::string body) {
  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  r.headers.push_back({"Content-Security-Policy", kPagePolicy});
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return absl::InternalError("cannot print the audit as JSON");
  }
  return out;
}

// The shared look of both pages.
constexpr char kStyle[] = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1em 2em; color: #1a1a1a; }
h1 { font-size: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.6em; text-align: left; }
th { background: #f3f3f3; }
.bar { width: 160px; height: 10px; background: #eee; border-radius: 5px; display: inline-block;
  vertical-align: middle; margin-right: 0.4em; }
.bar > div { height: 100%; background: #3b7dd8; border-radius: 5px; }
.state { font-weight: bold; }
.SUCCEEDED { color: #14702a; } .FAILED { color: #a01515; } .CANCELLED { color: #777; }
.RUNNING { color: #1d5fbf; } .PENDING { color: #8a6d00; }
.muted { color: #666; font-size: 0.9em; }
iframe { width: 100%; height: 80vh; border: 1px solid #ccc; margin-top: 1em; }
ul.files li { margin: 0.2em 0; }
#login { border: 1px solid #ccc; padding: 0.8em 1em; margin: 1em 0; background: #fafafa; }
)css";

// With auth on: a token form. The token stays in this tab's sessionStorage
// and goes out only as an Authorization header of fetch calls to this
// origin, never in a URL (URLs end up in logs and histories).
constexpr char kLoginForm[] = R"html(<form id="login" hidden>
<p>This server requires a token (the same as the gRPC API's).</p>
<label>Token <input type="password" id="token" autocomplete="off" size="48"></label>
<button type="submit" id="signin">Sign in</button> <span id="login-error" class="FAILED"></span>
</form>
)html";

// Shared script: escapes nothing because it never writes HTML from data
// (textContent only).
constexpr char kScriptCommon[] = R"js(
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function bar(fraction) {
  const outer = el('span', undefined, 'bar');
  const inner = el('div');
  inner.style.width = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100) + '%';
  outer.appendChild(inner);
  return outer;
}
function fractionOf(a) {
  if (a.state === 'SUCCEEDED') return 1;
  return (a.progress && a.progress.fraction) || 0;
}
const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
const AUTH = document.body.dataset.auth === '1';
const TOKEN_KEY = 'mia-token';
function authHeaders() {
  const t = AUTH ? sessionStorage.getItem(TOKEN_KEY) : null;
  return t ? {'Authorization': 'Bearer ' + t} : {};
}
// fetch with the token; a 401 asks for one.
async function api(path) {
  const r = await fetch(path, {cache: 'no-store', headers: authHeaders()});
  if (r.status === 401 && AUTH) {
    document.getElementById('login').hidden = false;
    document.getElementById('login-error').textContent =
        sessionStorage.getItem(TOKEN_KEY) ? 'The token was refused.' : '';
    const e = new Error('Sign in with a token.');
    e.auth = true;
    throw e;
  }
  return r;
}
if (AUTH) {
  document.getElementById('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    document.getElementById('login').hidden = true;
    document.getElementById('login-error').textContent = '';
  });
}
// A report file as a blob: URL (fetched with the token), for frames and
// downloads that cannot send a header.
async function blobUrl(path) {
  const r = await api(path);
  if (!r.ok) throw new Error('HTTP ' + r.status);
  return URL.createObjectURL(await r.blob());
}
)js";

constexpr char kIndexBody[] = R"html(<h1>mia audits</h1>
<p class="muted">Read-only. Refreshed every 1.5 s. <span id="status"></span></p>
<table id="audits"><thead><tr><th>Audit</th><th>State</th><th>Stage</th><th>Progress</th>
<th>Models</th><th>Created</th></tr></thead><tbody></tbody></table>
<p id="empty" class="muted" hidden>No audits yet.</p>
<script>
)html";

constexpr char kIndexScript[] = R"js(
function render(list) {
  const body = document.querySelector('#audits tbody');
  body.replaceChildren();
  const audits = (list.audits || []).slice().reverse();  // newest first
  document.getElementById('empty').hidden = audits.length > 0;
  for (const a of audits) {
    const id = a.name.replace(/^audits\//, '');
    const tr = el('tr');
    tr.dataset.id = id;
    tr.dataset.state = a.state;
    const link = el('a', id);
    link.href = '/audits/' + encodeURIComponent(id);
    const first = el('td'); first.appendChild(link); tr.appendChild(first);
    tr.appendChild(el('td', a.state, 'state ' + a.state));
    tr.appendChild(el('td', (a.progress && a.progress.stage) || ''));
    const p = el('td', undefined, 'progress');
    const f = fractionOf(a);
    p.dataset.fraction = String(f);
    p.appendChild(bar(f));
    p.appendChild(el('span', Math.round(f * 100) + '%'));
    tr.appendChild(p);
    const pr = a.progress || {};
    tr.appendChild(el('td', pr.models_total ? pr.models_trained + ' / ' + pr.models_total : ''));
    tr.appendChild(el('td', a.create_time || ''));
    body.appendChild(tr);
  }
  document.getElementById('status').textContent =
      (list.truncated ? 'Showing the oldest ' + audits.length + '. ' : '') +
      'Updated ' + new Date().toLocaleTimeString() + '.';
}
async function refresh() {
  try {
    const r = await api('/api/audits');
    if (!r.ok) throw new Error('HTTP ' + r.status);
    render(await r.json());
  } catch (e) {
    document.getElementById('status').textContent = (e.auth ? '' : 'Server unreachable: ') + e.message;
  }
  setTimeout(refresh, 1500);
}
refresh();
</script>
)js";

constexpr char kAuditBody[] = R"html(<p><a href="/">&larr; all audits</a></p>
<h1>Audit <span id="id"></span></h1>
<table><tbody>
<tr><th>State</th><td id="state" class="state"></td></tr>
<tr><th>Stage</th><td id="stage"></td></tr>
<tr><th>Progress</th><td id="progress"></td></tr>
<tr><th>Models</th><td id="models"></td></tr>
<tr><th>Detail</th><td id="detail"></td></tr>
<tr><th>Created</th><td id="created"></td></tr>
<tr><th>Ended</th><td id="ended"></td></tr>
</tbody></table>
<p id="error" class="FAILED" hidden></p>
<div id="done" hidden>
<h2>Report</h2>
<ul class="files" id="files"></ul>
<iframe id="report" title="report.html" sandbox></iframe>
</div>
<p class="muted" id="status"></p>
<script>
)html";

constexpr char kAuditScript[] = R"js(
const id = document.body.dataset.id;
document.getElementById('id').textContent = id;
const base = '/audits/' + encodeURIComponent(id);
let shown = false;
async function showReport() {
  shown = true;
  document.getElementById('done').hidden = false;
  document.getElementById('report').src =
      AUTH ? await blobUrl(base + '/report.html') : base + '/report.html';
  const r = await api('/api/audits/' + encodeURIComponent(id) + '/files');
  if (!r.ok) return;
  const list = document.getElementById('files');
  for (const f of (await r.json()).files || []) {
    const li = el('li');
    const a = el('a', f.file);
    a.href = base + '/' + encodeURIComponent(f.file);
    if (f.file !== 'report.html') a.download = f.file;
    if (AUTH) {
      a.addEventListener('click', async (ev) => {
        ev.preventDefault();
        const save = el('a');
        save.href = await blobUrl(base + '/' + encodeURIComponent(f.file));
        save.download = f.file;
        save.click();
      });
    }
    li.appendChild(a);
    li.appendChild(el('span', ' (' + f.size_bytes + ' bytes)', 'muted'));
    list.appendChild(li);
  }
}
function render(a) {
  const state = document.getElementById('state');
  state.textContent = a.state;
  state.className = 'state ' + a.state;
  const p = a.progress || {};
  document.getElementById('stage').textContent = p.stage || '';
  const cell = document.getElementById('progress');
  const f = fractionOf(a);
  cell.dataset.fraction = String(f);
  cell.replaceChildren(bar(f), el('span', Math.round(f * 100) + '%'));
  document.getElementById('models').textContent =
      p.models_total ? p.models_trained + ' / ' + p.models_total : '';
  document.getElementById('detail').textContent = p.detail || '';
  document.getElementById('created').textContent = a.create_time || '';
  document.getElementById('ended').textContent = a.end_time || '';
  const error = document.getElementById('error');
  error.hidden = !(a.error && a.error.message);
  error.textContent = a.error ? (a.error.code || '') + ': ' + (a.error.message || '') : '';
  if (a.state === 'SUCCEEDED' && !shown) showReport();
}
async function refresh() {
  try {
    const r = await api('/api/audits/' + encodeURIComponent(id));
    if (!r.ok) throw new Error('HTTP ' + r.status + ': ' + (await r.text()));
    const a = await r.json();
    render(a);
    document.getElementById('status').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
    if (TERMINAL.includes(a.state)) return;  // nothing changes any more
  } catch (e) {
    document.getElementById('status').textContent = e.message;
  }
  setTimeout(refresh, 1500);
}
refresh();
</script>
)js";

std::string PageHtml(const std::string& title, const std::string& body_attributes,
                     const char* body, const char* script) {
  return absl::StrCat("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
                      // An empty icon, so the browser asks for no /favicon.ico.
                      "<link rel=\"icon\" href=\"data:,\">\n",
                      "<title>", report::XmlEscape(title), "</title>\n<style>", kStyle,
                      "</style>\n</head>\n<body", body_attributes, ">\n", kLoginForm, body,
                      kScriptCommon,
                      script, "</body>\n</html>\n");
}

// "audits/<id>" for an id as the server issues them; INVALID_ARGUMENT else.
absl::StatusOr<std::string> AuditName(const std::string& id) {
  const std::string name = "audits/" + id;
  MIA_RETURN_IF_ERROR(AuditBackend::AuditId(name).status());
  return name;
}

class Dashboard {
 public:
  Dashboard(AuditBackend* backend, DashboardOptions options)
      : backend_(backend), options_(std::move(options)) {}

  using Handler = HttpResponse (Dashboard::*)(const HttpRequest&, const Caller&);

  // The one gate of every route that returns data. With auth on, the HTML
  // pages themselves hold no data and are served to anyone (a browser's
  // navigation cannot send the token header); their scripts fetch the data
  // with the token.
  HttpResponse Serve(const HttpRequest& request, Handler handler, bool page_shell) {
    Caller caller;
    if (options_.authorize && !(page_shell && IsShell(request))) {
      absl::StatusOr<Caller> allowed = options_.authorize(request);
      if (!allowed.ok()) return Error(allowed.status());
      caller = *std::move(allowed);
    }
    return (this->*handler)(request, caller);
  }

  HttpResponse Index(const HttpRequest&, const Caller&) {
    return Page(PageHtml("mia audits", BodyAttributes(""), kIndexBody, kIndexScript));
  }

  HttpResponse ListJson(const HttpRequest&, const Caller& caller) {
    v1::ListAuditsResponse all;
    bool truncated = false;
    std::string token;
    do {
      v1::ListAuditsRequest request;
      request.set_page_size(100);
      request.set_page_token(token);
      request.set_view(v1::AUDIT_VIEW_BASIC);
      absl::StatusOr<v1::ListAuditsResponse> page = backend_->ListAudits(caller, request);
      if (!page.ok()) return Error(page.status());
      for (v1::Audit& audit : *page->mutable_audits()) {
        if (all.audits_size() >= options_.max_audits) {
          truncated = true;
          break;
        }
        audit.clear_result();  // the list shows state and progress only
        *all.add_audits() = std::move(audit);
      }
      token = page->next_page_token();
    } while (!token.empty() && !truncated);
    absl::StatusOr<std::string> json = ToJson(all);
    if (!json.ok()) return Error(json.status());
    // ListAuditsResponse's own fields, plus whether the list was cut.
    json->pop_back();  // the closing brace
    absl::StrAppend(&*json, ",\"truncated\":", truncated ? "true" : "false", "}");
    return Json(std::move(*json));
  }

  // /api/audits/<id> and /api/audits/<id>/files
  HttpResponse AuditJson(const HttpRequest& request, const Caller& caller) {
    const std::vector<std::string> parts =
        absl::StrSplit(request.path.substr(std::string("/api/audits/").size()), '/');
    absl::StatusOr<std::string> name = AuditName(parts[0]);
    if (!name.ok()) return Error(name.status());
    if (parts.size() == 1) {
      v1::GetAuditRequest get;
      get.set_name(*name);
      get.set_view(v1::AUDIT_VIEW_BASIC);
      absl::StatusOr<v1::Audit> audit = backend_->GetAudit(caller, get);
      if (!audit.ok()) return Error(audit.status());
      absl::StatusOr<std::string> json = ToJson(*audit);
      return json.ok() ? Json(std::move(*json)) : Error(json.status());
    }
    if (parts.size() == 2 && parts[1] == "files") {
      v1::ListReportFilesRequest list;
      list.set_name(*name);
      absl::StatusOr<v1::ListReportFilesResponse> files = backend_->ListReportFiles(caller, list);
      if (!files.ok()) return Error(files.status());
      absl::StatusOr<std::string> json = ToJson(*files);
      return json.ok() ? Json(std::move(*json)) : Error(json.status());
    }
    return Error(absl::NotFoundError("no such page"));
  }

  // /audits/<id> and /audits/<id>/<file>
  HttpResponse AuditPage(const HttpRequest& request, const Caller& caller) {
    const std::vector<std::string> parts =
        absl::StrSplit(request.path.substr(std::string("/audits/").size()), '/');
    absl::StatusOr<std::string> name = AuditName(parts[0]);
    if (!name.ok()) return Error(name.status());
    if (parts.size() == 1) {
      if (!options_.authorize) {
        // The audit must exist; its page then polls for the rest. (With
        // auth on the page's script asks, with the token.)
        v1::GetAuditRequest get;
        get.set_name(*name);
        get.set_view(v1::AUDIT_VIEW_BASIC);
        absl::StatusOr<v1::Audit> audit = backend_->GetAudit(caller, get);
        if (!audit.ok()) return Error(audit.status());
      }
      return Page(PageHtml(
          absl::StrCat("mia ", *name),
          BodyAttributes(absl::StrCat(" data-id=\"", report::XmlEscape(parts[0]), "\"")),
          kAuditBody, kAuditScript));
    }
    if (parts.size() != 2) return Error(absl::NotFoundError("no such page"));
    return File(caller, *name, parts[1]);
  }

 private:
  // A report file, confined to the audit's folder by the backend (the same
  // check as GetReportFile: a plain name, no links out of the folder).
  HttpResponse File(const Caller& caller, const std::string& name, const std::string& file) {
    v1::GetReportFileRequest get;
    get.set_name(name);
    get.set_file(file);
    absl::StatusOr<std::string> path = backend_->ReportFilePath(caller, get);
    if (!path.ok()) return Error(path.status());
    std::ifstream in(*path, std::ios::binary | std::ios::ate);
    if (!in) return Error(absl::NotFoundError(absl::StrCat(name, " has no such report file")));
    const std::streamoff size = in.tellg();
    if (size > options_.max_file_bytes) {
      return Error(absl::ResourceExhaustedError(absl::StrCat(
          file, " is larger than the dashboard serves (", options_.max_file_bytes,
          " bytes): download it with `mia report`")));
    }
    in.seekg(0);
    HttpResponse r;
    r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    r.content_type = ReportFileContentType(file);
    if (absl::StartsWith(r.content_type, "text/")) absl::StrAppend(&r.content_type, "; charset=utf-8");
    r.headers.push_back({"Content-Security-Policy", kFilePolicy});
    if (file != "report.html") {
      // The name is one the report folder holds; quoted only when plain.
      const bool plain = file.find_first_not_of(
                             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                         std::string::npos;
      r.headers.push_back({"Content-Disposition",
                           plain ? absl::StrCat("attachment; filename=\"", file, "\"")
                                 : std::string("attachment")});
    }
    return r;
  }

  // "/" and "/audits/<id>": pages without data.
  static bool IsShell(const HttpRequest& request) {
    if (request.path == "/") return true;
    if (!absl::StartsWith(request.path, "/audits/")) return false;
    return request.path.find('/', std::string("/audits/").size()) == std::string::npos;
  }

  std::string BodyAttributes(const std::string& more) const {
    return absl::StrCat(options_.authorize ? " data-auth=\"1\"" : "", more);
  }

  AuditBackend* const backend_;
  const DashboardOptions options_;
};

}  // namespace

void AddDashboardRoutes(AuditBackend* backend, const DashboardOptions& options,
                        HttpRoutes* routes) {
  auto dashboard = std::make_shared<Dashboard>(backend, options);
  auto route = [dashboard](Dashboard::Handler handler, bool page_shell) {
    return [dashboard, handler, page_shell](const HttpRequest& request) {
      return dashboard->Serve(request, handler, page_shell);
    };
  };
  routes->Get("/", route(&Dashboard::Index, true));
  routes->Get("/api/audits", route(&Dashboard::ListJson, false));
  routes->GetPrefix("/api/audits/", route(&Dashboard::AuditJson, false));
  routes->GetPrefix("/audits/", route(&Dashboard::AuditPage, true));
}

}  // namespace mia::server
