#include "coordinator/alert_sender.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"
#include "coordinator/tls_client.hpp"
#include "coordinator/upstream.hpp"
#include "coordinator/utc_time.hpp"

namespace coordinator {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  static const unsigned char kNoKey = 0;
  const void* key_bytes = key.empty() ? static_cast<const void*>(&kNoKey) : static_cast<const void*>(key.data());
  if (HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), digest, &size) == nullptr) {
    return {};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

std::string alert_body(const AlertEvent& event, std::string_view coordinator) {
  nlohmann::json body = {
      {"event", event.name()},
      {"child", event.child.empty() ? nlohmann::json() : nlohmann::json(event.child)},
      {"model", event.model.empty() ? nlohmann::json() : nlohmann::json(event.model)},
      {"time", format_utc(event.time)},
      {"message", event.message},
      {"coordinator", coordinator},
  };
  if (event.recovered) body["cause"] = to_string(event.cause);
  if (event.expires_at) body["expires_at"] = format_utc(*event.expires_at);
  return dump_json(body);
}

DeliveryVerdict judge_delivery(std::optional<unsigned> status) {
  if (!status) return DeliveryVerdict::retry;
  if (*status >= 200 && *status < 300) return DeliveryVerdict::done;
  if (*status == 429 || *status >= 500) return DeliveryVerdict::retry;
  return DeliveryVerdict::give_up;
}

AlertSender::AlertSender(Executor executor, std::vector<WebhookTarget> targets, std::string secret,
                         std::string coordinator)
    : executor_(std::move(executor)), secret_(std::move(secret)), coordinator_(std::move(coordinator)) {
  for (auto& target : targets) {
    auto outbox = std::make_shared<Outbox>(executor_, std::move(target));
    const bool ipv6 = outbox->target.host.find(':') != std::string::npos;
    outbox->shown = std::string(outbox->target.tls ? "https://" : "http://") +
                    (ipv6 ? "[" + outbox->target.host + "]" : outbox->target.host) + ":" +
                    std::to_string(outbox->target.port);
    if (outbox->target.tls && !tls_) {
      std::string error;
      tls_ = make_tls_client_context(error);
      if (!tls_) spdlog::error("webhook {}: {}; its events will not be delivered", outbox->shown, error);
    }
    outboxes_.push_back(std::move(outbox));
  }
}

awaitable<std::optional<SimpleResponse>> AlertSender::post(net::ssl::context* tls, const WebhookTarget& target,
                                                           const std::string& body, const Headers& headers,
                                                           std::string& error) {
  if (!target.tls) {
    co_return co_await simple_request(target.host, target.port, http::verb::post, target.target, body, kAttemptTimeout,
                                      error, headers);
  }
  if (tls == nullptr) {
    error = "no TLS context";
    co_return std::nullopt;
  }
  co_return co_await simple_tls_request(*tls, target.host, target.port, http::verb::post, target.target, body,
                                        kAttemptTimeout, error, headers);
}

AlertSender::~AlertSender() {
  stop();
}

void AlertSender::start() {
  if (started_) return;
  started_ = true;
  for (const auto& outbox : outboxes_) {
    net::co_spawn(executor_, deliver_all(outbox, counters_, tls_), LogEscapedException{"webhook delivery"});
  }
}

void AlertSender::stop() {
  for (const auto& outbox : outboxes_) {
    outbox->stopping = true;
    outbox->wake.cancel();
    outbox->pause.cancel();
  }
}

void AlertSender::send(const AlertEvent& event) {
  if (outboxes_.empty()) return;
  Letter letter;
  letter.event = std::string(event.name());
  letter.body = alert_body(event, coordinator_);
  if (!secret_.empty()) letter.signature = "sha256=" + hmac_sha256_hex(secret_, letter.body);
  for (const auto& outbox : outboxes_) {
    if (outbox->stopping) continue;
    if (outbox->letters.size() >= kOutboxLimit) {
      spdlog::warn("webhook {}: outbox full ({} events); dropped the oldest ({})", outbox->shown, kOutboxLimit,
                   outbox->letters.front().event);
      outbox->letters.pop_front();
      ++counters_->dropped;
    }
    outbox->letters.push_back(letter);
    outbox->wake.cancel();
  }
}

awaitable<void> AlertSender::deliver_all(std::shared_ptr<Outbox> outbox, std::shared_ptr<Counters> counters,
                                         std::shared_ptr<net::ssl::context> tls) {
  while (!outbox->stopping) {
    if (outbox->letters.empty()) {
      outbox->wake.expires_at(Clock::time_point::max());
      error_code ec;
      co_await outbox->wake.async_wait(use_awaitable_ec(ec));
      continue;
    }
    Letter letter = std::move(outbox->letters.front());
    outbox->letters.pop_front();
    co_await deliver(outbox, counters, tls, std::move(letter));
  }
}

awaitable<void> AlertSender::deliver(std::shared_ptr<Outbox> outbox, std::shared_ptr<Counters> counters,
                                     std::shared_ptr<net::ssl::context> tls, Letter letter) {
  Headers headers;
  headers.emplace_back("X-Coordinator-Event", letter.event);
  if (!letter.signature.empty()) headers.emplace_back("X-Coordinator-Signature", letter.signature);
  std::string problem;
  for (int attempt = 1; attempt <= kTries && !outbox->stopping; ++attempt) {
    std::string error;
    std::optional<SimpleResponse> response = co_await post(tls.get(), outbox->target, letter.body, headers, error);
    const std::optional<unsigned> status = response ? std::optional<unsigned>(response->status) : std::nullopt;
    const DeliveryVerdict verdict = judge_delivery(status);
    if (verdict == DeliveryVerdict::done) {
      ++counters->sent;
      spdlog::info("webhook {}: {} delivered ({}, try {})", outbox->shown, letter.event, *status, attempt);
      co_return;
    }
    if (verdict == DeliveryVerdict::give_up) {
      ++counters->failed;
      spdlog::warn("webhook {}: {} refused with {}; not retried", outbox->shown, letter.event, *status);
      co_return;
    }
    problem = status ? "status " + std::to_string(*status) : error;
    if (attempt == kTries) break;
    outbox->pause.expires_after(std::chrono::seconds(1) * (1 << (attempt - 1)));
    error_code ec;
    co_await outbox->pause.async_wait(use_awaitable_ec(ec));
  }
  ++counters->failed;
  spdlog::warn("webhook {}: {} not delivered after {} tries (last: {})", outbox->shown, letter.event, kTries,
               problem.empty() ? std::string("stopped") : problem);
}

void AlertSender::append_prometheus(std::string& out) const {
  out +=
      "# HELP coordinator_webhook_deliveries_total Alert events per webhook: sent (2xx), failed (refused or out of "
      "tries), dropped (outbox full)\n"
      "# TYPE coordinator_webhook_deliveries_total counter\n";
  out += "coordinator_webhook_deliveries_total{result=\"sent\"} " + std::to_string(counters_->sent) + "\n";
  out += "coordinator_webhook_deliveries_total{result=\"failed\"} " + std::to_string(counters_->failed) + "\n";
  out += "coordinator_webhook_deliveries_total{result=\"dropped\"} " + std::to_string(counters_->dropped) + "\n";
}

}  // namespace coordinator
