#include "coordinator/errors.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace coordinator {
namespace {

constexpr errc kFirst = errc::bad_request;
constexpr errc kLast = errc::stream_quota_exhausted;

TEST(Errors, TableRowsFollowTheEnum) {
  EXPECT_TRUE(error_table_in_order());
}

TEST(Errors, EveryErrorHasAStatusTypeAndCode) {
  std::set<std::string> codes_before_answer;
  for (int value = static_cast<int>(kFirst); value <= static_cast<int>(kLast); ++value) {
    const ErrorSpec& spec = spec_of(static_cast<errc>(value));
    EXPECT_GE(spec.status, 400u) << value;
    EXPECT_LT(spec.status, 600u) << value;
    EXPECT_FALSE(spec.type.empty()) << value;
    EXPECT_FALSE(spec.code.empty()) << value;
    EXPECT_GE(spec.retry_after, 0) << value;
  }
}

TEST(Errors, KnownRowsKeepTheirWireShape) {
  // What clients and the integration tests already rely on.
  EXPECT_EQ(spec_of(errc::body_too_large).status, 413u);
  EXPECT_EQ(spec_of(errc::queue_full).status, 429u);
  EXPECT_EQ(spec_of(errc::queue_full).retry_after, 5);
  EXPECT_EQ(spec_of(errc::quota_exhausted).code, "quota_exhausted");
  EXPECT_EQ(spec_of(errc::quota_exhausted).type, "rate_limit_exceeded");
  EXPECT_EQ(spec_of(errc::request_cancelled).status, 499u);
  EXPECT_EQ(spec_of(errc::upstream_stalled).type, "timeout");
  // In a stream the quota error keeps the stream-abort type with the quota code.
  EXPECT_EQ(spec_of(errc::stream_quota_exhausted).type, "upstream_error");
  EXPECT_EQ(spec_of(errc::stream_quota_exhausted).code, "quota_exhausted");
  EXPECT_EQ(spec_of(errc::admin_not_local).type, "permission_error");
  // OpenAI's own answer for an unknown model.
  EXPECT_EQ(spec_of(errc::model_not_found).status, 404u);
  EXPECT_EQ(spec_of(errc::model_not_found).type, "invalid_request_error");
  EXPECT_EQ(spec_of(errc::model_not_found).code, "model_not_found");
}

TEST(Errors, IsABoostErrorCode) {
  const boost::system::error_code ec = errc::queue_timeout;
  EXPECT_EQ(&ec.category(), &coordinator_category());
  EXPECT_EQ(ec.message(), "queue_timeout");
  EXPECT_STREQ(ec.category().name(), "coordinator");
  EXPECT_NE(ec, boost::system::error_code(errc::queue_full));
}

TEST(Errors, BodyAndEventsComeFromTheRow) {
  const auto body = nlohmann::json::parse(error_body(errc::invalid_json, "bad"));
  EXPECT_EQ(body["error"]["message"], "bad");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["code"], "invalid_json");
  const std::string events = stream_abort_events(errc::child_stream_error, "oops");
  EXPECT_EQ(events.rfind("data: {", 0), 0u);
  EXPECT_NE(events.find("\"code\":\"child_stream_error\""), std::string::npos);
  EXPECT_TRUE(events.ends_with("\n\ndata: [DONE]\n\n"));
}

}  // namespace
}  // namespace coordinator
