#include "coordinator/routes.hpp"

#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <vector>

#include "coordinator/child_client.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/json_check.hpp"
#include "coordinator/model_catalog.hpp"
#include "coordinator/readiness.hpp"
#include "coordinator/status_page.hpp"

namespace coordinator {

namespace {

constexpr std::string_view kCancelPrefix = "/v1/cancel/";

// First match wins. Keys at the edge: /v1/* and /admin/* (and /metrics when
// asked) need one, also where no route follows (a 401 before the 404).
constexpr Route kRoutes[] = {
    {"/live", Match::exact, Methods::get_or_head, KeyNeed::none, RouteId::live},
    {"/ready", Match::exact, Methods::get_or_head, KeyNeed::none, RouteId::readiness},
    {"/health", Match::exact, Methods::get_or_head, KeyNeed::none, RouteId::readiness},
    {"/metrics", Match::exact, Methods::get_or_head, KeyNeed::when_metrics_protected, RouteId::metrics},
    {"/", Match::exact, Methods::get_or_head, KeyNeed::none, RouteId::status_page},
    {"/status", Match::exact, Methods::get_or_head, KeyNeed::none, RouteId::status_page},
    // The admin handler checks the peer before the method.
    {"/admin/", Match::prefix, Methods::any, KeyNeed::required, RouteId::admin},
    {"/v1/models", Match::exact, Methods::get, KeyNeed::required, RouteId::models},
    {"/v1/chat/completions", Match::exact, Methods::post, KeyNeed::required, RouteId::chat_completions},
    {kCancelPrefix, Match::prefix, Methods::post, KeyNeed::required, RouteId::cancel},
    {"/v1/responses", Match::exact, Methods::post, KeyNeed::required, RouteId::responses},
    {"/v1/messages", Match::exact, Methods::post, KeyNeed::required, RouteId::messages},
    {"/v1/messages/count_tokens", Match::exact, Methods::post, KeyNeed::required, RouteId::count_tokens},
    {"/v1/", Match::prefix, Methods::any, KeyNeed::required, RouteId::not_found},
    {"/v1beta/models", Match::exact, Methods::get, KeyNeed::required, RouteId::gemini_models},
    // GET for one model, POST for its methods: the handler tells them apart.
    {"/v1beta/models/", Match::prefix, Methods::any, KeyNeed::required, RouteId::gemini_model},
    {"/v1beta/", Match::prefix, Methods::any, KeyNeed::required, RouteId::not_found},
};
constexpr Route kNoRoute{"", Match::prefix, Methods::any, KeyNeed::none, RouteId::not_found};

constexpr Route kAdminRoutes[] = {
    {"/admin/children", Match::exact, Methods::get, KeyNeed::required, RouteId::admin_children},
    {"/admin/usage", Match::exact, Methods::get, KeyNeed::required, RouteId::admin_usage},
    {"/admin/profiles", Match::exact, Methods::get, KeyNeed::required, RouteId::admin_profiles},
    {"/admin/profiles/", Match::prefix, Methods::put_or_delete, KeyNeed::required, RouteId::admin_profile},
    {"/admin/reload", Match::exact, Methods::post, KeyNeed::required, RouteId::admin_reload},
    {"/admin/children/", Match::prefix, Methods::post, KeyNeed::required, RouteId::admin_child_action},
};
// Any other admin path is refused as a POST route would be: 405 unless POST, then 404.
constexpr Route kNoAdminRoute{"/admin/", Match::prefix, Methods::post, KeyNeed::required, RouteId::not_found};

const ExtraHeaders kAskForBearer{{"WWW-Authenticate", "Bearer"}};

const Route& first_match(std::span<const Route> table, const Route& fallback, std::string_view path) {
  for (const Route& route : table) {
    if (route.match == Match::exact ? path == route.path : path.starts_with(route.path)) return route;
  }
  return fallback;
}

struct CancelBroadcast {
  explicit CancelBroadcast(Executor executor, std::size_t children)
      : answers(children, 0), pending(children), all_answered(executor) {}
  std::vector<unsigned> answers;  // 0: no answer
  std::size_t pending;
  SteadyTimer all_answered;
};

awaitable<void> cancel_one(std::shared_ptr<CancelBroadcast> broadcast, std::size_t index, std::string name,
                           std::string host, int port, std::string req_id, Clock::duration timeout, ExtraHeaders auth) {
  broadcast->answers[index] =
      co_await cancel_on_child(std::move(name), std::move(host), port, std::move(req_id), timeout, std::move(auth));
  if (--broadcast->pending == 0) broadcast->all_answered.cancel();
}

}  // namespace

const Route& match_route(std::string_view path) {
  return first_match(kRoutes, kNoRoute, path);
}

const Route& match_admin_route(std::string_view path) {
  return first_match(kAdminRoutes, kNoAdminRoute, path);
}

bool method_allowed(Methods methods, http::verb method) {
  switch (methods) {
    case Methods::get_or_head:  // HEAD is answered like GET, without the body
      return method == http::verb::get || method == http::verb::head;
    case Methods::get:
      return method == http::verb::get;
    case Methods::post:
      return method == http::verb::post;
    case Methods::put_or_delete:
      return method == http::verb::put || method == http::verb::delete_;
    case Methods::any:
      return true;
  }
  return true;
}

std::string_view allow_header(Methods methods) {
  switch (methods) {
    case Methods::get_or_head:
      return "GET, HEAD";
    case Methods::get:
      return "GET";
    case Methods::post:
      return "POST";
    case Methods::put_or_delete:
      return "PUT, DELETE";
    case Methods::any:
      return "";
  }
  return "";
}

bool needs_key(const Route& route, bool protect_metrics) {
  switch (route.key) {
    case KeyNeed::none:
      return false;
    case KeyNeed::required:
      return true;
    case KeyNeed::when_metrics_protected:
      return protect_metrics;
  }
  return true;
}

ChildAction parse_child_action(std::string_view path) {
  constexpr std::string_view kPrefix = "/admin/children/";
  const std::string_view rest = path.starts_with(kPrefix) ? path.substr(kPrefix.size()) : "";
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos) return {};
  return {std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::optional<ClientProtocol> protocol_of_path(std::string_view path) {
  if (path.starts_with("/v1beta/")) return ClientProtocol::gemini;
  if (path.starts_with("/v1/messages")) return ClientProtocol::anthropic;
  if (path.starts_with("/v1/responses")) return ClientProtocol::responses;
  return std::nullopt;
}

GeminiTarget parse_gemini_target(std::string_view path) {
  constexpr std::string_view kPrefix = "/v1beta/models/";
  if (!path.starts_with(kPrefix)) return {};
  const std::string_view rest = path.substr(kPrefix.size());
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return {std::string(rest), ""};
  return {std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1))};
}

// ---- Replies ----

awaitable<bool> Replies::reply(Exchange exchange, unsigned status, std::string body, ExtraHeaders extra) const {
  const Request& request = exchange.request;
  bool keep_alive = keep_alive_for(request);
  for (const auto& [name, value] : extra) {
    if (iequals(name, "Connection") && iequals(value, "close")) keep_alive = false;
  }
  exchange.outcome.status = status;
  exchange.outcome.bytes_sent = body.size();
  ExtraHeaders headers;
  for (const auto& header : extra) {
    if (!iequals(header.first, "Connection")) headers.push_back(header);
  }
  add_request_id(headers, request);
  const bool sent = co_await send_json(exchange.stream, request.version(), status, std::move(body), keep_alive,
                                       config_.client_send_timeout, headers, request.method() == http::verb::head);
  co_return sent&& keep_alive;
}

awaitable<bool> Replies::reply_text(Exchange exchange, std::string body, std::string content_type) const {
  const Request& request = exchange.request;
  const bool head_only = request.method() == http::verb::head;
  const bool keep_alive = keep_alive_for(request);
  exchange.outcome.status = 200;
  exchange.outcome.bytes_sent = head_only ? 0 : body.size();
  ExtraHeaders extra;
  add_request_id(extra, request);
  const bool sent =
      co_await send_text(exchange.stream, request.version(), 200, std::move(body), std::move(content_type), keep_alive,
                         config_.client_send_timeout, head_only, extra);
  co_return sent&& keep_alive;
}

awaitable<bool> Replies::reply_error(Exchange exchange, errc error, std::string message, ExtraHeaders extra) const {
  const ErrorSpec& spec = spec_of(error);
  if (spec.retry_after > 0) extra.emplace_back("Retry-After", std::to_string(spec.retry_after));
  co_return co_await reply(exchange, spec.status, error_body(error, message), std::move(extra));
}

awaitable<bool> Replies::reply_error(Exchange exchange, std::optional<ClientProtocol> protocol, errc error,
                                     std::string message, ExtraHeaders extra) const {
  if (!protocol) co_return co_await reply_error(exchange, error, std::move(message), std::move(extra));
  const ErrorSpec& spec = spec_of(error);
  if (spec.retry_after > 0) extra.emplace_back("Retry-After", std::to_string(spec.retry_after));
  std::string body = protocol_error_json(*protocol, spec.status, message, spec.code);
  co_return co_await reply(exchange, spec.status, std::move(body), std::move(extra));
}

// ---- Router ----

Router::Router(net::io_context& io, const Config& config, ServerServices services, const Replies& replies,
               const ServerState& state)
    : io_(io),
      config_(config),
      services_(std::move(services)),
      registry_(services_.registry),
      replies_(replies),
      state_(state),
      forward_{config,          services_.registry, services_.dispatcher,
               services_.pool,  services_.recycle,  &services_.metrics,
               &active_relays_, &services_.api_keys},
      proxy_model_name_(proxy_model_name_from_environment()) {}

// route, handle and chat_completions are not coroutines: each only picks the
// next step and returns its awaitable (three coroutine frames less per request).
awaitable<bool> Router::route(Exchange exchange) {
  const Request& request = exchange.request;
  const std::string_view path = path_of(request.target());
  const Route& route = match_route(path);
  // The key first: a client without one learns nothing about the routes.
  if (needs_key(route, config_.protect_metrics) && services_.api_keys.enabled() &&
      !services_.api_keys.allows(request_key(request))) {
    return replies_.reply_error(exchange, protocol_of_path(path), errc::invalid_api_key,
                                "Invalid or missing API key: send Authorization: Bearer KEY, X-API-Key: KEY, "
                                "x-goog-api-key: KEY or ?key=KEY.",
                                kAskForBearer);
  }
  if (!method_allowed(route.methods, request.method())) {
    std::string message =
        "Method " + std::string(request.method_string()) + " is not allowed on " + std::string(path) + ".";
    ExtraHeaders allow{{"Allow", std::string(allow_header(route.methods))}};
    return replies_.reply_error(exchange, protocol_of_path(path), errc::method_not_allowed, std::move(message),
                                std::move(allow));
  }
  return handle(route.id, exchange);
}

awaitable<bool> Router::handle(RouteId id, Exchange exchange) {
  switch (id) {
    case RouteId::live: {
      return replies_.reply(exchange, 200, std::string(R"({"status":"alive"})"));
    }
    case RouteId::readiness: {
      return readiness(exchange);
    }
    case RouteId::metrics: {
      return metrics_text(exchange);
    }
    case RouteId::status_page: {
      return replies_.reply_text(exchange, std::string(status_page_html()), "text/html; charset=utf-8");
    }
    case RouteId::models: {
      return models(exchange);
    }
    case RouteId::chat_completions: {
      return chat_completions(exchange);
    }
    case RouteId::cancel: {
      return cancel(exchange);
    }
    case RouteId::responses: {
      return translated(exchange, ClientProtocol::responses);
    }
    case RouteId::messages: {
      return translated(exchange, ClientProtocol::anthropic);
    }
    case RouteId::count_tokens: {
      return count_tokens(exchange);
    }
    case RouteId::gemini_models: {
      return gemini_models(exchange);
    }
    case RouteId::gemini_model: {
      return gemini_model(exchange);
    }
    case RouteId::admin: {
      return admin(exchange);
    }
    default:
      break;
  }
  const std::string_view path = path_of(exchange.request.target());
  return replies_.reply_error(exchange, protocol_of_path(path), errc::not_found,
                              "No route for " + std::string(path) + ".");
}

awaitable<bool> Router::readiness(Exchange exchange) {
  const unsigned status = registry_.serving_count() > 0 ? 200 : 503;
  // Named locals: g++ 12 destroys a temporary of a ?: inside a co_await statement twice.
  const std::string extra = services_.fleet_extra ? services_.fleet_extra() : std::string{};
  std::string body = readiness_body(registry_, Clock::now(), extra, &services_.usage, services_.profile_facts);
  co_return co_await replies_.reply(exchange, status, std::move(body));
}

awaitable<bool> Router::metrics_text(Exchange exchange) {
  std::string body = services_.metrics.render(registry_, state_.requests_in_flight, services_.dispatcher.queued());
  services_.usage.append_prometheus(body);
  if (services_.extra_metrics) services_.extra_metrics(body);
  co_return co_await replies_.reply_text(exchange, std::move(body), "text/plain; version=0.0.4; charset=utf-8");
}

// Not a coroutine either: the relay writes the outcome where the session reads it.
awaitable<bool> Router::forward(Exchange exchange, bool stream_requested, bool takes_slot, RequestedModel model) {
  return forward_request(forward_, exchange.stream, exchange.request, stream_requested, takes_slot,
                         replies_.keep_alive_for(exchange.request), std::string(exchange.peer_text), std::move(model),
                         exchange.outcome);
}

// The union of what the serving children listed: no child is taken, so it
// answers while every child is busy. Until one has listed its models, a child answers.
awaitable<bool> Router::models(Exchange exchange) {
  std::optional<std::string> listed = models_union(registry_.serving_model_sets());
  if (!listed) co_return co_await forward(exchange, /*stream_requested=*/false, /*takes_slot=*/false, {});
  co_return co_await replies_.reply(exchange, 200, std::move(*listed));
}

void Router::count_usage(const Request& request, const ForwardResult& outcome) {
  if (!outcome.took_slot) return;
  // Without keys every request counts under "none": no digest per request then.
  std::string key(kNoKeyId);
  if (services_.api_keys.enabled()) {
    const auto presented = request_key(request);
    if (presented) key = key_id(*presented);
  }
  const auto now = std::chrono::system_clock::now();
  services_.usage.record_request(outcome.child, key, outcome.status, now);
  if (outcome.usage) services_.usage.record_tokens(outcome.child, key, *outcome.usage, now);
}

// The body's model as the relay routes by it; the children's MODEL_NAME names none.
RequestedModel Router::requested_model(const JsonCheck& body) const {
  RequestedModel model;
  if (!body.has_model) return model;
  if (body.model_escaped) {
    model.decoded.emplace();
    model_text(body, *model.decoded);
  } else {
    model.in_body = body.model;
  }
  if (names_no_model(model.view(), proxy_model_name_)) return {};
  return model;
}

awaitable<bool> Router::chat_completions(Exchange exchange) {
  const JsonCheck body = check_json(exchange.request.body());
  if (!body.is_object) {
    const std::string why = body.valid ? "the body is not a JSON object" : body.error;
    return replies_.reply_error(exchange, errc::invalid_json, "Request body must be a JSON object: " + why + ".");
  }
  return forward(exchange, body.stream_requested, /*takes_slot=*/true, requested_model(body));
}

awaitable<bool> Router::cancel(Exchange exchange) {
  const std::string_view req_id = path_of(exchange.request.target()).substr(kCancelPrefix.size());
  if (!is_valid_req_id(req_id)) {
    co_return co_await replies_.reply_error(exchange, errc::invalid_req_id,
                                            "req_id must be 1-128 letters, digits, '-' or '_'.");
  }
  co_return co_await broadcast_cancel(exchange, std::string(req_id));
}

awaitable<bool> Router::broadcast_cancel(Exchange exchange, std::string req_id) {
  // The real child cancels only a request still waiting in its own queue; one
  // in progress stops when its connection closes, which ending our relay does.
  const bool relay_ended = active_relays_.cancel(req_id);
  // A req_id seen in a child's stream goes to that child alone; others to all.
  std::vector<std::size_t> targets;
  if (const auto owner = registry_.owner_of(req_id)) {
    targets.push_back(*owner);
  } else {
    for (std::size_t i = 0; i < registry_.size(); ++i) targets.push_back(i);
  }
  auto broadcast = std::make_shared<CancelBroadcast>(io_.get_executor(), targets.size());
  const auto timeout = config_.cancel_timeout;
  for (std::size_t k = 0; k < targets.size(); ++k) {
    const Child& child = registry_.at(targets[k]);
    net::co_spawn(io_,
                  cancel_one(broadcast, k, child.name, child.host, child.ports.api, req_id, timeout,
                             credentials_of(exchange.request)),
                  LogEscapedException{"cancel broadcast"});
    services_.metrics.count_cancel();
  }
  // Each cancel is bounded by its own timeout; this wait only collects them.
  broadcast->all_answered.expires_after(timeout + std::chrono::seconds(1));
  while (broadcast->pending > 0) {
    error_code ec;
    co_await broadcast->all_answered.async_wait(use_awaitable_ec(ec));
    if (!ec) break;  // expired
  }
  nlohmann::json completed = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  for (std::size_t k = 0; k < targets.size(); ++k) {
    (broadcast->answers[k] == 200 ? completed : failed).push_back(registry_.at(targets[k]).name);
  }
  const bool any = relay_ended || !completed.empty();
  spdlog::info("cancel {}: relay {}; cancelled in the queue of {} of {} children{}", req_id,
               relay_ended ? "ended" : "not found", completed.size(), targets.size(),
               targets.size() == 1 && registry_.size() > 1 ? " (sent to its owner only)" : "");
  const std::string message = relay_ended          ? "The relay of this request was ended; its child stops it."
                              : !completed.empty() ? "The request was taken out of its child's queue."
                                                   : "No request with this req_id is in progress or queued.";
  // `completed`: children whose own queue held it; `failed`: the others.
  nlohmann::json body = {{"success", any},         {"req_id", req_id}, {"relay_ended", relay_ended},
                         {"completed", completed}, {"failed", failed}, {"message", message}};
  const unsigned status = any ? 200 : 404;
  co_return co_await replies_.reply(exchange, status, dump_json(body));
}

awaitable<bool> Router::admin(Exchange exchange) {
  if (!config_.admin_remote && !exchange.peer.is_loopback()) {
    co_return co_await replies_.reply_error(exchange, errc::admin_not_local,
                                            "The admin API answers loopback clients only (see --admin-remote).");
  }
  const std::string_view path = path_of(exchange.request.target());
  const Route& route = match_admin_route(path);
  if (!method_allowed(route.methods, exchange.request.method())) {
    const std::string allowed(allow_header(route.methods));
    ExtraHeaders allow{{"Allow", allowed}};
    co_return co_await replies_.reply_error(exchange, errc::method_not_allowed, "Use " + allowed + ".",
                                            std::move(allow));
  }
  switch (route.id) {
    case RouteId::admin_children: {
      std::string body = children_json(registry_, Clock::now(), &services_.usage, services_.profile_facts);
      co_return co_await replies_.reply(exchange, 200, std::move(body));
    }
    case RouteId::admin_profiles: {
      const ProfileFactsCache empty(config_.expiry_warning);
      const ProfileFactsCache& cache = services_.profile_facts != nullptr ? *services_.profile_facts : empty;
      std::string body = profiles_json(registry_, cache);
      co_return co_await replies_.reply(exchange, 200, std::move(body));
    }
    case RouteId::admin_usage: {
      const auto usage = services_.usage.to_admin_json(std::chrono::system_clock::now());
      co_return co_await replies_.reply(exchange, 200, dump_json(usage));
    }
    case RouteId::admin_reload: {
      std::string error = services_.admin.reload ? services_.admin.reload() : "reload is not available";
      co_return co_await admin_done(exchange, "reload", std::move(error));
    }
    case RouteId::admin_child_action: {
      co_return co_await admin_child_action(exchange);
    }
    case RouteId::admin_profile: {
      AdminAnswer answer{404, error_body(errc::not_found, "Profiles are not managed in this mode.")};
      if (services_.admin.profile) {
        answer =
            services_.admin.profile(exchange.request.method(), profile_name_in_path(path), exchange.request.body());
      }
      co_return co_await replies_.reply(exchange, answer.status, std::move(answer.body));
    }
    default:
      break;
  }
  co_return co_await replies_.reply_error(exchange, errc::not_found, "No admin route for " + std::string(path) + ".");
}

awaitable<bool> Router::admin_child_action(Exchange exchange) {
  const std::string_view path = path_of(exchange.request.target());
  const ChildAction child = parse_child_action(path);
  const auto* handler = child.action == "restart"   ? &services_.admin.restart
                        : child.action == "drain"   ? &services_.admin.drain
                        : child.action == "undrain" ? &services_.admin.undrain
                                                    : nullptr;
  if (handler == nullptr || child.name.empty()) {
    co_return co_await replies_.reply_error(exchange, errc::not_found, "No admin route for " + std::string(path) + ".");
  }
  const auto index = registry_.find(child.name);
  if (!index) {
    co_return co_await replies_.reply_error(exchange, errc::unknown_child, "No child named '" + child.name + "'.");
  }
  std::string error = *handler ? (*handler)(*index) : "not available in this mode";
  co_return co_await admin_done(exchange, child.action + " " + child.name, std::move(error));
}

awaitable<bool> Router::admin_done(Exchange exchange, std::string action, std::string error) {
  if (!error.empty()) {
    spdlog::warn("admin {} refused: {}", action, error);
    co_return co_await replies_.reply_error(exchange, errc::admin_action_refused, error);
  }
  spdlog::info("admin {} done (request {})", action, request_id_of(exchange.request));
  nlohmann::json body = {{"success", true}, {"action", action}};
  co_return co_await replies_.reply(exchange, 200, dump_json(body));
}

}  // namespace coordinator
