// The Router's routes for the other protocols (Responses, Anthropic Messages,
// Gemini): each request translated to a chat request that takes the relay's
// path; the answer turned back by a ProtocolAnswer on its way out.
#include <chrono>
#include <nlohmann/json.hpp>

#include "coordinator/child_client.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/json_check.hpp"
#include "coordinator/model_catalog.hpp"
#include "coordinator/routes.hpp"
#include "coordinator/translate/anthropic_api.hpp"
#include "coordinator/translate/gemini_api.hpp"
#include "coordinator/translate/responses_api.hpp"

namespace coordinator {

namespace {

// A client's body as JSON, after the depth-capped check that keeps hostile
// nesting off the parser; `error` says why it is refused.
struct ClientBody {
  nlohmann::json value;
  std::string error;
};

ClientBody parse_client_body(std::string_view body) {
  const JsonCheck check = check_json(body);
  if (!check.is_object) {
    const std::string why = check.valid ? "the body is not a JSON object" : check.error;
    return {nullptr, "Request body must be a JSON object: " + why + "."};
  }
  return {nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false), ""};
}

// The chat request a child gets for a translated one: the client's fields
// (its key as a Bearer token when it came in another place), the chat body.
// No Accept-Encoding: the answer is read here, so it must come uncompressed.
Request chat_request_for(const Request& client, std::string chat_body) {
  Request chat{http::verb::post, "/v1/chat/completions", client.version()};
  for (const auto& field : client) {
    const http::field code = field.name();
    if (code == http::field::content_length || code == http::field::transfer_encoding ||
        code == http::field::content_type || code == http::field::expect || code == http::field::accept_encoding ||
        (code == http::field::unknown && iequals(field.name_string(), "x-goog-api-key"))) {
      continue;
    }
    chat.insert(field.name_string(), field.value());
  }
  if (chat[http::field::authorization].empty()) {
    if (const auto key = request_key(client)) chat.set(http::field::authorization, "Bearer " + std::string(*key));
  }
  chat.set(http::field::content_type, "application/json");
  chat.body() = std::move(chat_body);
  chat.prepare_payload();
  return chat;
}

bool requests_stream(const nlohmann::json& chat) {
  const nlohmann::json* stream = translate::member(chat, "stream");
  return stream != nullptr && stream->is_boolean() && stream->get<bool>();
}

}  // namespace

translate::Options Router::translation_options(const Request& request) const {
  translate::Options options;
  options.model_aliases = &config_.model_aliases;
  options.id_base = std::string(request_id_of(request));
  options.created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return options;
}

// A Responses, Anthropic or Gemini request: translated to a chat request that
// takes the relay's path like any other, its answer turned back on the way.
awaitable<bool> Router::translated(Exchange exchange, ClientProtocol protocol) {
  const Request& request = exchange.request;
  ClientBody body = parse_client_body(request.body());
  if (!body.error.empty()) {
    co_return co_await replies_.reply_error(exchange, protocol, errc::invalid_json, std::move(body.error));
  }
  const translate::Options options = translation_options(request);
  GeminiTarget target;
  if (protocol == ClientProtocol::gemini) target = parse_gemini_target(path_of(request.target()));
  const translate::Result<nlohmann::json> chat = [&]() -> translate::Result<nlohmann::json> {
    switch (protocol) {
      case ClientProtocol::responses:
        return translate::responses::to_chat_request(body.value, options);
      case ClientProtocol::anthropic:
        return translate::anthropic::to_chat_request(body.value, options);
      case ClientProtocol::gemini:
        return translate::gemini::to_chat_request(body.value, target.model, target.method == "streamGenerateContent",
                                                  options);
    }
    return translate::ProtocolError{500, "unknown protocol", "", ""};
  }();
  if (!chat.ok()) {
    const unsigned status = static_cast<unsigned>(chat.error().status);
    co_return co_await replies_.reply(exchange, status, protocol_error_json(protocol, chat.error()));
  }
  const bool stream_requested = requests_stream(chat.value());
  RequestedModel model;
  if (std::string chat_model = translate::string_member(chat.value(), "model");
      !chat_model.empty() && !names_no_model(chat_model, proxy_model_name_)) {
    model.decoded = std::move(chat_model);
  }
  // As the client named it: the answers show that name (Gemini's is in the path).
  std::string client_model = target.model;
  if (protocol != ClientProtocol::gemini) client_model = translate::string_member(body.value, "model");
  const Request chat_request = chat_request_for(request, translate::dump(chat.value()));
  ProtocolAnswer answer(protocol, std::move(body.value), std::move(client_model), options);
  co_return co_await forward_request(forward_, exchange.stream, chat_request, stream_requested, /*takes_slot=*/true,
                                     replies_.keep_alive_for(request), std::string(exchange.peer_text),
                                     std::move(model), exchange.outcome, &answer);
}

// An estimate, answered here: no child can count tokens either.
awaitable<bool> Router::count_tokens(Exchange exchange) {
  ClientBody body = parse_client_body(exchange.request.body());
  if (!body.error.empty()) {
    co_return co_await replies_.reply_error(exchange, ClientProtocol::anthropic, errc::invalid_json,
                                            std::move(body.error));
  }
  const auto counted = translate::anthropic::count_tokens(body.value, translation_options(exchange.request));
  if (!counted.ok()) {
    const unsigned status = static_cast<unsigned>(counted.error().status);
    co_return co_await replies_.reply(exchange, status,
                                      protocol_error_json(ClientProtocol::anthropic, counted.error()));
  }
  co_return co_await replies_.reply(exchange, 200, translate::dump(counted.value()));
}

awaitable<bool> Router::gemini_models(Exchange exchange) {
  const auto ids = model_ids(registry_.serving_model_sets());
  co_return co_await replies_.reply(exchange, 200, translate::dump(translate::gemini::models_list(ids)));
}

// GET /v1beta/models/{model}, POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse.
awaitable<bool> Router::gemini_model(Exchange exchange) {
  const Request& request = exchange.request;
  const GeminiTarget target = parse_gemini_target(path_of(request.target()));
  const http::verb wanted = target.method.empty() ? http::verb::get : http::verb::post;
  if (request.method() != wanted) {
    ExtraHeaders allow{{"Allow", wanted == http::verb::get ? "GET" : "POST"}};
    co_return co_await replies_.reply_error(exchange, ClientProtocol::gemini, errc::method_not_allowed,
                                            "Use " + std::string(allow.front().second) + " on this path.",
                                            std::move(allow));
  }
  if (target.model.empty()) {
    co_return co_await replies_.reply_error(exchange, ClientProtocol::gemini, errc::not_found,
                                            "The path names no model: /v1beta/models/{model}.");
  }
  if (target.method.empty()) {
    if (registry_.no_serving_child_has(target.model)) {
      const auto known = model_ids(registry_.serving_model_sets());
      co_return co_await replies_.reply_error(exchange, ClientProtocol::gemini, errc::model_not_found,
                                              model_not_found_message(target.model, known));
    }
    co_return co_await replies_.reply(exchange, 200, translate::dump(translate::gemini::model_info(target.model)));
  }
  if (target.method != "generateContent" && target.method != "streamGenerateContent") {
    co_return co_await replies_.reply_error(
        exchange, ClientProtocol::gemini, errc::not_found,
        "The method " + target.method + " is not served here; generateContent and streamGenerateContent are.");
  }
  if (target.method == "streamGenerateContent" && query_param(request.target(), "alt") != "sse") {
    co_return co_await replies_.reply_error(
        exchange, ClientProtocol::gemini, errc::bad_request,
        "streamGenerateContent is served as server-sent events only: add ?alt=sse to the URL.");
  }
  co_return co_await translated(exchange, ClientProtocol::gemini);
}

}  // namespace coordinator
