#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/alert_tracker.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/upstream.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace coordinator {

// Lower-case hex of HMAC-SHA256(`key`, `data`) (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// The JSON body of one alert: {"event","child","model","time","message","coordinator"}
// (+ "cause" for recovered, "expires_at" for profile_expiring). Never a cookie or a key.
std::string alert_body(const AlertEvent& event, std::string_view coordinator);

// What one delivery attempt's answer means: 2xx done; no answer (connect
// error, timeout), 429 and 5xx are tried again; anything else is refused for good.
enum class DeliveryVerdict { done, retry, give_up };
DeliveryVerdict judge_delivery(std::optional<unsigned> status);

// Posts alert events to every --webhook, off the request path: one outbox and
// one delivery coroutine per webhook on the I/O thread, so a dead webhook
// never delays another. Each attempt is bounded (connect, write and read);
// retries wait 1, 2, 4, 8 s (5 tries in all). A full outbox drops its oldest event.
class AlertSender {
 public:
  static constexpr std::size_t kOutboxLimit = 256;
  static constexpr int kTries = 5;
  static constexpr auto kAttemptTimeout = std::chrono::seconds(5);

  struct Counters {
    std::uint64_t sent = 0;
    std::uint64_t failed = 0;
    std::uint64_t dropped = 0;
  };

  AlertSender(Executor executor, std::vector<WebhookTarget> targets, std::string secret, std::string coordinator);
  AlertSender(const AlertSender&) = delete;
  AlertSender& operator=(const AlertSender&) = delete;
  ~AlertSender();

  void start();
  void stop();
  bool enabled() const { return !outboxes_.empty(); }
  // Queues `event` for every webhook; never blocks.
  void send(const AlertEvent& event);
  const Counters& counters() const { return *counters_; }
  // coordinator_webhook_deliveries_total{result="sent|failed|dropped"}.
  void append_prometheus(std::string& out) const;

 private:
  struct Letter {
    std::string event;
    std::string body;
    std::string signature;  // "sha256=..." or empty
  };
  struct Outbox {
    Outbox(Executor executor, WebhookTarget webhook) : target(std::move(webhook)), wake(executor), pause(executor) {}
    WebhookTarget target;
    std::string shown;  // http://HOST:PORT: the path may hold a token, so it is never logged
    std::deque<Letter> letters;
    SteadyTimer wake;   // waits for a letter
    SteadyTimer pause;  // between two tries
    bool stopping = false;
  };
  // Static, with shared state: a delivery in progress outlives a stopped sender.
  static awaitable<void> deliver_all(std::shared_ptr<Outbox> outbox, std::shared_ptr<Counters> counters,
                                     std::shared_ptr<net::ssl::context> tls);
  static awaitable<void> deliver(std::shared_ptr<Outbox> outbox, std::shared_ptr<Counters> counters,
                                 std::shared_ptr<net::ssl::context> tls, Letter letter);

  using Headers = std::vector<std::pair<std::string, std::string>>;
  // One try of one letter, over TLS for an https:// webhook.
  static awaitable<std::optional<SimpleResponse>> post(net::ssl::context* tls, const WebhookTarget& target,
                                                       const std::string& body, const Headers& headers,
                                                       std::string& error);

  Executor executor_;
  std::shared_ptr<net::ssl::context> tls_;  // made when some webhook is https://
  std::string secret_;
  std::string coordinator_;
  std::vector<std::shared_ptr<Outbox>> outboxes_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
  bool started_ = false;
};

}  // namespace coordinator
