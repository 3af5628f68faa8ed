// Alerts (issue 14): the tracker's dedup and recovered events per cause,
// quota_exhausted only when no child can serve the model, the HMAC signature,
// the delivery verdicts, the body and the webhook URL checks.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "coordinator/alert_sender.hpp"
#include "coordinator/alert_tracker.hpp"
#include "coordinator/cli.hpp"
#include "coordinator/config.hpp"
#include "parse_args.hpp"

using namespace coordinator;
using namespace std::chrono_literals;
using Wall = std::chrono::system_clock;

namespace {

const Wall::time_point kWallNow = Wall::time_point(std::chrono::seconds(1'800'000'000));
constexpr auto kWeek = std::chrono::duration_cast<Wall::duration>(std::chrono::hours(24 * 7));

AlertChildView child(std::string name, ChildState state = ChildState::ready) {
  AlertChildView view;
  view.name = std::move(name);
  view.state = state;
  return view;
}

AlertChildView serving(std::string name, std::vector<std::string> models) {
  AlertChildView view = child(std::move(name));
  view.models_known = true;
  view.models = std::move(models);
  return view;
}

std::vector<std::string> names(const std::vector<AlertEvent>& events) {
  std::vector<std::string> out;
  for (const auto& event : events) {
    std::string text(event.name());
    if (event.recovered) text += ":" + std::string(to_string(event.cause));
    if (!event.child.empty()) text += " " + event.child;
    if (!event.model.empty()) text += " " + event.model;
    out.push_back(text);
  }
  return out;
}

using Names = std::vector<std::string>;

}  // namespace

TEST(AlertTracker, NeedsReloginOnceUntilTheChildServesAgainThenRecoveredOnce) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{child("alpha"), child("beta")}};
  EXPECT_TRUE(tracker.update(fleet, kWallNow).empty());
  fleet.children[0].state = ChildState::needs_relogin;
  EXPECT_EQ(names(tracker.update(fleet, kWallNow)), Names{"needs_relogin alpha"});
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 1s).empty()) << "deduplicated";
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 2s).empty());
  // A new profile: the child starts again; not recovered until it serves.
  fleet.children[0].state = ChildState::starting;
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 3s).empty());
  fleet.children[0].state = ChildState::ready;
  const auto events = tracker.update(fleet, kWallNow + 4s);
  EXPECT_EQ(names(events), Names{"recovered:needs_relogin alpha"});
  EXPECT_EQ(events[0].time, kWallNow + 4s);
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 5s).empty());
  // Again logged out later: a new event.
  fleet.children[0].state = ChildState::needs_relogin;
  EXPECT_EQ(names(tracker.update(fleet, kWallNow + 6s)), Names{"needs_relogin alpha"});
}

TEST(AlertTracker, ChildFailedOnceAndRecoveredWhenServing) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{child("alpha", ChildState::failed)}};
  EXPECT_EQ(names(tracker.update(fleet, kWallNow)), Names{"child_failed alpha"});
  EXPECT_TRUE(tracker.update(fleet, kWallNow).empty());
  fleet.children[0].state = ChildState::backoff;
  EXPECT_TRUE(tracker.update(fleet, kWallNow).empty());
  fleet.children[0].state = ChildState::busy;
  EXPECT_EQ(names(tracker.update(fleet, kWallNow)), Names{"recovered:child_failed alpha"});
}

TEST(AlertTracker, RetiredOrRotatedOutChildrenAnnounceNothing) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{child("alpha", ChildState::failed), child("beta", ChildState::needs_relogin)}};
  EXPECT_EQ(tracker.update(fleet, kWallNow).size(), 2u);
  // The shutdown retires every child; a pool rotation gives alpha's slot to gamma.
  fleet.children[1].state = ChildState::retired;
  fleet.children[0].name = "gamma";
  fleet.children[0].state = ChildState::starting;
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 1s).empty());
  EXPECT_EQ(tracker.active_count(), 2u);
}

TEST(AlertTracker, QuotaExhaustedOnlyWhenEveryChildThatServesTheModelCoolsForIt) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{serving("alpha", {"m-a", "m-b"}), serving("beta", {"m-a", "m-b"}), serving("gamma", {"m-c"})}};
  fleet.children[0].cooling_models = {{"m-a", kWallNow + 60s}};
  EXPECT_TRUE(tracker.update(fleet, kWallNow).empty()) << "beta still serves m-a";
  fleet.children[1].cooling_models = {{"m-a", kWallNow + 30s}};
  auto events = tracker.update(fleet, kWallNow);
  ASSERT_EQ(names(events), Names{"quota_exhausted m-a"});
  EXPECT_TRUE(events[0].child.empty());
  EXPECT_NE(events[0].message.find("alpha, beta"), std::string::npos) << events[0].message;
  EXPECT_NE(events[0].message.find("T08:00:30"), std::string::npos) << "the first one back: " << events[0].message;
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 1s).empty()) << "deduplicated";
  // beta's cooldown ends: m-a can be served again.
  fleet.children[1].cooling_models.clear();
  EXPECT_EQ(names(tracker.update(fleet, kWallNow + 31s)), Names{"recovered:quota_exhausted m-a"});
}

TEST(AlertTracker, QuotaExhaustedCountsAChildWithoutAListAndIgnoresNonServingOnes) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{serving("alpha", {"m-a"}), child("beta")}};  // beta: no list yet, so it may serve m-a
  fleet.children[0].cooling_models = {{"m-a", kWallNow + 60s}};
  EXPECT_TRUE(tracker.update(fleet, kWallNow).empty());
  // beta is logged out: no serving child left for m-a but alpha, which cools for it.
  fleet.children[1].state = ChildState::needs_relogin;
  EXPECT_EQ(names(tracker.update(fleet, kWallNow)), (Names{"needs_relogin beta", "quota_exhausted m-a"}));
  // A child cooling as a whole for its account cannot serve m-a either.
  AlertTracker second(kWeek);
  AlertSnapshot whole{{serving("alpha", {"m-a"}), serving("beta", {"m-a"})}};
  whole.children[0].cooling_models = {{"m-a", kWallNow + 60s}};
  whole.children[1].state = ChildState::cooling;
  EXPECT_TRUE(second.update(whole, kWallNow).empty()) << "cooling, but not for its account (an ejection)";
  whole.children[1].account_cooling_until = kWallNow + 10s;
  EXPECT_EQ(names(second.update(whole, kWallNow)), Names{"quota_exhausted m-a"});
}

TEST(AlertTracker, ProfileExpiringOnceAndRecoveredAfterAFreshLogin) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{child("alpha"), child("beta")}};
  fleet.children[0].cookies_expire_at = kWallNow + std::chrono::hours(24 * 30);
  fleet.children[1].cookies_expire_at = kWallNow + std::chrono::hours(48);
  auto events = tracker.update(fleet, kWallNow);
  ASSERT_EQ(names(events), Names{"profile_expiring beta"});
  ASSERT_TRUE(events[0].expires_at.has_value());
  EXPECT_EQ(*events[0].expires_at, kWallNow + std::chrono::hours(48));
  EXPECT_TRUE(tracker.update(fleet, kWallNow + 1h).empty());
  fleet.children[1].cookies_expire_at = kWallNow + std::chrono::hours(24 * 60);
  EXPECT_EQ(names(tracker.update(fleet, kWallNow + 2h)), Names{"recovered:profile_expiring beta"});
}

TEST(AlertTracker, ExpiryWarningsAreDueOncePerUtcDayAndProfile) {
  AlertTracker tracker(kWeek);
  AlertSnapshot fleet{{child("alpha"), child("beta")}};
  fleet.children[0].cookies_expire_at = kWallNow + std::chrono::hours(24 * 3);
  fleet.children[1].cookies_expire_at = kWallNow + std::chrono::hours(24 * 30);
  const auto first = tracker.expiry_warnings_due(fleet, kWallNow);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].first, "alpha");
  EXPECT_TRUE(tracker.expiry_warnings_due(fleet, kWallNow + 1h).empty());
  EXPECT_EQ(tracker.expiry_warnings_due(fleet, kWallNow + std::chrono::hours(24)).size(), 1u) << "the next UTC day";
}

TEST(AlertTracker, SnapshotOfTheRegistryCopiesStatesCooldownsAndExpiries) {
  std::vector<Child> children(2);
  children[0].name = "alpha";
  children[1].name = "beta";
  children[1].attached = true;
  Registry registry(std::move(children));
  const auto now = Clock::now();
  registry.report_health(0, true, "", 0, now);
  registry.report_health(1, true, "", 0, now);
  registry.report_model_limited(0, "m-a", now + 60s, CoolingCause::quota, "530", now);
  const AlertSnapshot snapshot = alert_snapshot(registry, nullptr, now, kWallNow);
  ASSERT_EQ(snapshot.children.size(), 2u);
  EXPECT_EQ(snapshot.children[0].state, ChildState::ready);
  ASSERT_EQ(snapshot.children[0].cooling_models.size(), 1u);
  EXPECT_EQ(snapshot.children[0].cooling_models[0].first, "m-a");
  EXPECT_EQ(snapshot.children[0].cooling_models[0].second, kWallNow + 60s);
  EXPECT_FALSE(snapshot.children[1].cookies_expire_at.has_value());
}

TEST(AlertSender, HmacSha256MatchesRfc4231TestCase2) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(AlertSender, DeliveryVerdicts) {
  EXPECT_EQ(judge_delivery(200), DeliveryVerdict::done);
  EXPECT_EQ(judge_delivery(204), DeliveryVerdict::done);
  EXPECT_EQ(judge_delivery(std::nullopt), DeliveryVerdict::retry) << "connect error or timeout";
  EXPECT_EQ(judge_delivery(500), DeliveryVerdict::retry);
  EXPECT_EQ(judge_delivery(503), DeliveryVerdict::retry);
  EXPECT_EQ(judge_delivery(429), DeliveryVerdict::retry);
  EXPECT_EQ(judge_delivery(400), DeliveryVerdict::give_up);
  EXPECT_EQ(judge_delivery(404), DeliveryVerdict::give_up);
  EXPECT_EQ(judge_delivery(301), DeliveryVerdict::give_up);
}

TEST(AlertSender, BodyShape) {
  AlertEvent event;
  event.cause = AlertCause::needs_relogin;
  event.recovered = true;
  event.child = "alpha";
  event.message = "child alpha is logged in again and serving";
  event.time = kWallNow;
  const auto body = nlohmann::json::parse(alert_body(event, "host:2048"));
  EXPECT_EQ(body["event"], "recovered");
  EXPECT_EQ(body["cause"], "needs_relogin");
  EXPECT_EQ(body["child"], "alpha");
  EXPECT_TRUE(body["model"].is_null());
  EXPECT_EQ(body["time"], "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(body["coordinator"], "host:2048");
  AlertEvent quota;
  quota.cause = AlertCause::quota_exhausted;
  quota.model = "m-a";
  quota.time = kWallNow;
  const auto quota_body = nlohmann::json::parse(alert_body(quota, "c"));
  EXPECT_EQ(quota_body["event"], "quota_exhausted");
  EXPECT_TRUE(quota_body["child"].is_null());
  EXPECT_EQ(quota_body["model"], "m-a");
  EXPECT_FALSE(quota_body.contains("cause"));
}

TEST(WebhookUrl, ParsesHostPortAndPath) {
  auto parsed = parse_webhook_url("http://127.0.0.1:8080/hooks/abc?x=1");
  ASSERT_TRUE(std::holds_alternative<WebhookTarget>(parsed)) << std::get<std::string>(parsed);
  auto webhook = std::get<WebhookTarget>(parsed);
  EXPECT_EQ(webhook.host, "127.0.0.1");
  EXPECT_EQ(webhook.port, 8080);
  EXPECT_EQ(webhook.target, "/hooks/abc?x=1");
  webhook = std::get<WebhookTarget>(parse_webhook_url("http://alerts.example"));
  EXPECT_EQ(webhook.port, 80);
  EXPECT_EQ(webhook.target, "/");
  webhook = std::get<WebhookTarget>(parse_webhook_url("http://[::1]:9000/x"));
  EXPECT_EQ(webhook.host, "::1");
  EXPECT_EQ(webhook.port, 9000);
  webhook = std::get<WebhookTarget>(parse_webhook_url("http://h?q"));
  EXPECT_EQ(webhook.target, "/?q");
  EXPECT_FALSE(webhook.tls);
  webhook = std::get<WebhookTarget>(parse_webhook_url("https://hooks.example/services/T0/B1"));
  EXPECT_TRUE(webhook.tls);
  EXPECT_EQ(webhook.port, 443);
  EXPECT_EQ(webhook.target, "/services/T0/B1");
  EXPECT_EQ(std::get<WebhookTarget>(parse_webhook_url("https://h:8443/")).port, 8443);
}

TEST(WebhookUrl, RefusesWhatItCannotSend) {
  const auto reason = [](const std::string& text) {
    const auto parsed = parse_webhook_url(text);
    return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : std::string("accepted");
  };
  EXPECT_NE(reason("ftp://x/").find("http://"), std::string::npos);
  EXPECT_NE(reason("example.com/hook").find("http://"), std::string::npos);
  EXPECT_NE(reason("http:///path").find("empty host"), std::string::npos);
  EXPECT_NE(reason("http://h:0/").find("out of range"), std::string::npos);
  EXPECT_NE(reason("http://h:70000/").find("out of range"), std::string::npos);
  EXPECT_NE(reason("http://h:x/").find("number"), std::string::npos);
  EXPECT_NE(reason("http://h:/").find("number"), std::string::npos);
  EXPECT_NE(reason("http://user:pw@h/").find("user"), std::string::npos);
  EXPECT_NE(reason("http://h/a b").find("spaces"), std::string::npos);
  EXPECT_NE(reason("http://h/#frag").find("fragment"), std::string::npos);
  EXPECT_NE(reason("http://[::1/").find("unclosed"), std::string::npos);
}

using coordinator::cli_test::parse;

TEST(WebhookFlags, RepeatableWithASecretOrASecretFile) {
  auto outcome =
      parse({"--webhook", "http://127.0.0.1:9/a", "--webhook", "http://localhost/b", "--webhook-secret", "s3cret"});
  ASSERT_TRUE(std::holds_alternative<Config>(outcome)) << std::get<ExitRequest>(outcome).message;
  const Config& config = std::get<Config>(outcome);
  ASSERT_EQ(config.webhooks.size(), 2u);
  EXPECT_EQ(config.webhooks[1].host, "localhost");
  EXPECT_EQ(config.webhook_secret, "s3cret");

  char path[] = "/tmp/webhook-secret-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "from-a-file\n";
  outcome = parse({"--webhook", "http://127.0.0.1:9/", "--webhook-secret-file", path});
  ASSERT_TRUE(std::holds_alternative<Config>(outcome)) << std::get<ExitRequest>(outcome).message;
  EXPECT_EQ(std::get<Config>(outcome).webhook_secret, "from-a-file");

  outcome = parse({"--webhook-secret", "a", "--webhook-secret-file", path});
  ASSERT_TRUE(std::holds_alternative<ExitRequest>(outcome));
  EXPECT_EQ(std::get<ExitRequest>(outcome).code, 2);
  std::remove(path);

  outcome = parse({"--webhook", "https://hooks.example/x"});
  ASSERT_TRUE(std::holds_alternative<Config>(outcome)) << std::get<ExitRequest>(outcome).message;
  EXPECT_TRUE(std::get<Config>(outcome).webhooks[0].tls);
}

TEST(WebhookFlags, PrintConfigNeverShowsTheSecret) {
  const auto outcome = parse({"--webhook-secret", "do-not-print-me", "--print-config"});
  ASSERT_TRUE(std::holds_alternative<ExitRequest>(outcome));
  const auto& printed = std::get<ExitRequest>(outcome).message;
  EXPECT_EQ(printed.find("do-not-print-me"), std::string::npos) << printed;
  EXPECT_NE(printed.find("webhook-secret is set"), std::string::npos) << printed;
}
