#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/api_keys.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/field_lookup.hpp"
#include "coordinator/json_check.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/profile_admin.hpp"
#include "coordinator/profile_facts_cache.hpp"
#include "coordinator/protocol_answer.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/relay.hpp"
#include "coordinator/responses.hpp"
#include "coordinator/upstream.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

using Request = http::request<http::string_body>;

// The route table: which handler answers a path, which methods it takes and
// whether it needs a key. Pure data and pure lookups (tested in routes_test).
enum class RouteId {
  live,
  readiness,  // /ready and /health
  metrics,
  status_page,  // / and /status
  models,
  chat_completions,
  cancel,  // /v1/cancel/{req_id}
  // Other protocols, translated onto the children's chat completions.
  responses,      // POST /v1/responses (OpenAI Responses API)
  messages,       // POST /v1/messages (Anthropic Messages API)
  count_tokens,   // POST /v1/messages/count_tokens
  gemini_models,  // GET /v1beta/models
  gemini_model,   // /v1beta/models/{model}: GET, or POST :generateContent / :streamGenerateContent
  admin,          // /admin/*: the admin table below
  not_found,
  // Under /admin/, checked after the loopback check.
  admin_children,
  admin_usage,
  admin_profiles,
  admin_reload,
  admin_child_action,  // /admin/children/{name}/{restart|drain|undrain}
  admin_profile,       // PUT or DELETE /admin/profiles/{name} (profile_admin.hpp)
};
enum class Match { exact, prefix };
// The methods a route takes; `any`: every method reaches its handler.
enum class Methods { get_or_head, get, post, put_or_delete, any };
enum class KeyNeed { none, required, when_metrics_protected };

struct Route {
  std::string_view path;
  Match match;
  Methods methods;
  KeyNeed key;
  RouteId id;
};

// The first row of the table that matches `path`; a not_found row when none does.
const Route& match_route(std::string_view path);
// The same for a path under /admin/.
const Route& match_admin_route(std::string_view path);
bool method_allowed(Methods methods, http::verb method);
// The Allow header of a 405: "GET, HEAD", "GET", "POST" or "PUT, DELETE" (empty for `any`).
std::string_view allow_header(Methods methods);
bool needs_key(const Route& route, bool protect_metrics);

// /admin/children/{name}/{action}; both empty when the path has no such shape.
struct ChildAction {
  std::string name;
  std::string action;
};
ChildAction parse_child_action(std::string_view path);

// The target without its query.
std::string_view path_of(std::string_view target);

// The protocol whose error shape a path's answers take; nullopt: OpenAI's.
std::optional<ClientProtocol> protocol_of_path(std::string_view path);

// /v1beta/models/{model}:{method} (Gemini); `method` empty for a plain model path.
struct GeminiTarget {
  std::string model;
  std::string method;
};
GeminiTarget parse_gemini_target(std::string_view path);

// What the admin API can ask of the rest of the daemon. Each returns an error
// message, or an empty string when done.
struct AdminActions {
  std::function<std::string(std::size_t)> restart;
  std::function<std::string(std::size_t)> drain;
  std::function<std::string(std::size_t)> undrain;
  std::function<std::string()> reload;  // API keys and profiles
  // PUT or DELETE /admin/profiles/{name}: the method, the name, the body.
  std::function<AdminAnswer(http::verb, std::string_view, std::string_view)> profile;
};

// Everything the server works with besides its sockets.
struct ServerServices {
  Registry& registry;
  Dispatcher& dispatcher;
  UpstreamPool& pool;
  Metrics& metrics;
  UsageBook& usage;
  const ApiKeyStore& api_keys;
  std::function<void(std::size_t, std::string)> recycle;
  std::function<std::string()> fleet_extra;  // extra /ready fields (JSON object)
  AdminActions admin;
  const ProfileFactsCache* profile_facts;           // the profiles' cookie facts (refreshed by the control plane)
  std::function<void(std::string&)> extra_metrics;  // more /metrics lines (the webhook deliveries)
};

// What the server's sessions share with the routes.
struct ServerState {
  bool shutting_down = false;
  std::size_t requests_in_flight = 0;
};

// One request being answered: the client's stream, the request, its peer, and
// what was sent (for the access log). The referents outlive the exchange.
struct Exchange {
  TcpStream& stream;
  const Request& request;
  net::ip::address peer;
  std::string_view peer_text;  // the peer's address as text, made once per connection ("" if unknown)
  ForwardResult& outcome;
};

// The coordinator's own answers, made in one place: JSON, text, and errors
// from the errc table (status, body, Retry-After). Each returns whether the
// connection may carry another request.
class Replies {
 public:
  Replies(const Config& config, const ServerState& state) : config_(config), state_(state) {}

  bool keep_alive_for(const Request& request) const { return keeps_alive(request) && !state_.shutting_down; }
  awaitable<bool> reply(Exchange exchange, unsigned status, std::string body, ExtraHeaders extra = {}) const;
  // 200 with a non-JSON body (metrics, the status page); no body for HEAD.
  awaitable<bool> reply_text(Exchange exchange, std::string body, std::string content_type) const;
  awaitable<bool> reply_error(Exchange exchange, errc error, std::string message, ExtraHeaders extra = {}) const;
  // The same in the error shape of `protocol` (OpenAI's when nullopt).
  awaitable<bool> reply_error(Exchange exchange, std::optional<ClientProtocol> protocol, errc error,
                              std::string message, ExtraHeaders extra = {}) const;

 private:
  const Config& config_;
  const ServerState& state_;
};

// Answers one parsed request: the key check, the method check, then the
// route's handler; /v1/* goes through the relay.
class Router {
 public:
  Router(net::io_context& io, const Config& config, ServerServices services, const Replies& replies,
         const ServerState& state);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  awaitable<bool> route(Exchange exchange);
  Metrics& metrics() { return services_.metrics; }
  // A chat request is done: counted for its child and its key (GET /admin/usage).
  void count_usage(const Request& request, const ForwardResult& outcome);
  // A child's log showed a quota hit: cool it down, send its unserved attempts elsewhere.
  void note_child_quota(std::size_t child) {
    report_quota_from_child_log(forward_, child, "out of quota (its log: GLOBAL ALERT: Quota Exceeded!)");
  }

 private:
  awaitable<bool> handle(RouteId id, Exchange exchange);
  awaitable<bool> readiness(Exchange exchange);
  awaitable<bool> metrics_text(Exchange exchange);
  awaitable<bool> forward(Exchange exchange, bool stream_requested, bool takes_slot, RequestedModel model);
  RequestedModel requested_model(const JsonCheck& body) const;
  awaitable<bool> models(Exchange exchange);
  awaitable<bool> chat_completions(Exchange exchange);
  awaitable<bool> translated(Exchange exchange, ClientProtocol protocol);
  translate::Options translation_options(const Request& request) const;
  awaitable<bool> count_tokens(Exchange exchange);
  awaitable<bool> gemini_models(Exchange exchange);
  awaitable<bool> gemini_model(Exchange exchange);
  awaitable<bool> cancel(Exchange exchange);
  awaitable<bool> broadcast_cancel(Exchange exchange, std::string req_id);
  awaitable<bool> admin(Exchange exchange);
  awaitable<bool> admin_child_action(Exchange exchange);
  awaitable<bool> admin_done(Exchange exchange, std::string action, std::string error);

  net::io_context& io_;
  const Config& config_;
  ServerServices services_;
  Registry& registry_;
  const Replies& replies_;
  const ServerState& state_;
  ActiveRelays active_relays_;  // declared before forward_, which points at it
  ForwardContext forward_;
  const std::string proxy_model_name_;  // the children's MODEL_NAME: a request for it names no model
};

}  // namespace coordinator
