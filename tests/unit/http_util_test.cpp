#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"

using namespace coordinator;

TEST(HttpUtil, ErrorBodyHasTheOpenAiShape) {
  const auto body = nlohmann::json::parse(
      error_body("No healthy child proxies available.", "service_unavailable", "no_healthy_children"));
  EXPECT_EQ(body["error"]["message"], "No healthy child proxies available.");
  EXPECT_EQ(body["error"]["type"], "service_unavailable");
  EXPECT_EQ(body["error"]["code"], "no_healthy_children");
}

TEST(HttpUtil, ErrorBodyEscapesItsMessage) {
  const auto body = nlohmann::json::parse(error_body("quote \" and \n newline", "t", "c"));
  EXPECT_EQ(body["error"]["message"], "quote \" and \n newline");
}

TEST(HttpUtil, StreamAbortEndsWithDone) {
  const std::string events = stream_abort_events(errc::child_stream_aborted, "child x broke off");
  EXPECT_EQ(events.rfind("data: {", 0), 0u);
  EXPECT_NE(events.find("\"code\":\"child_stream_aborted\""), std::string::npos);
  EXPECT_NE(events.find("\"type\":\"upstream_error\""), std::string::npos);
  EXPECT_TRUE(events.ends_with("\n\ndata: [DONE]\n\n"));
}

TEST(HttpUtil, HopByHopHeaders) {
  for (const char* name : {"Connection", "keep-alive", "TE", "Transfer-Encoding", "Upgrade", "Proxy-Connection"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (const char* name : {"Authorization", "X-API-Key", "Content-Type", "Accept"}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(HttpUtil, ConnectionHeaderListsExtraHopByHopFields) {
  EXPECT_TRUE(connection_lists("keep-alive, X-Secret-Hop", "x-secret-hop"));
  EXPECT_TRUE(connection_lists("close", "Close"));
  EXPECT_FALSE(connection_lists("keep-alive", "x-secret"));
  EXPECT_FALSE(connection_lists("", "x"));
}

TEST(HttpUtil, ReqIdValidation) {
  EXPECT_TRUE(is_valid_req_id("abc123"));
  EXPECT_TRUE(is_valid_req_id("a-b_c"));
  EXPECT_TRUE(is_valid_req_id(std::string(128, 'a')));
  EXPECT_FALSE(is_valid_req_id(std::string(129, 'a')));
  EXPECT_FALSE(is_valid_req_id(""));
  EXPECT_FALSE(is_valid_req_id("../etc"));
  EXPECT_FALSE(is_valid_req_id("%2e%2e"));
  EXPECT_FALSE(is_valid_req_id(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_req_id("a b"));
}

TEST(HeaderBlock, CompleteBlockAndItsLength) {
  const std::string block = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
  const auto check = check_header_block(block, 100);
  EXPECT_TRUE(check.complete);
  EXPECT_EQ(check.length, block.find("GET /next"));
  EXPECT_EQ(check.problem, HeaderBlockCheck::Problem::none);
}

TEST(HeaderBlock, IncompleteUntilTheBlankLine) {
  EXPECT_FALSE(check_header_block("GET / HTTP/1.1\r\nHost: x\r\n", 100).complete);
  EXPECT_FALSE(check_header_block("GET / HTTP/1.1\r\nHost: x\r", 100).complete);
}

TEST(HeaderBlock, LeadingEmptyLinesAreIgnored) {
  const auto check = check_header_block("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 100);
  EXPECT_TRUE(check.complete);
  EXPECT_EQ(check.problem, HeaderBlockCheck::Problem::none);
}

TEST(HeaderBlock, ObsFoldIsAProblem) {
  EXPECT_EQ(check_header_block("GET / HTTP/1.1\r\nX-A: a\r\n continued\r\n\r\n", 100).problem,
            HeaderBlockCheck::Problem::obs_fold);
  EXPECT_EQ(check_header_block("GET / HTTP/1.1\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n", 100).problem,
            HeaderBlockCheck::Problem::obs_fold);
}

TEST(HeaderBlock, BareLineFeedIsAProblem) {
  EXPECT_EQ(check_header_block("GET / HTTP/1.1\nHost: x\r\n\r\n", 100).problem, HeaderBlockCheck::Problem::bare_lf);
  EXPECT_EQ(check_header_block("GET / HTTP/1.1\r\nHost: x\n\r\n", 100).problem, HeaderBlockCheck::Problem::bare_lf);
}

TEST(HeaderBlock, TooManyFields) {
  std::string block = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 3; ++i) block += "a: b\r\n";
  EXPECT_EQ(check_header_block(block + "\r\n", 3).problem, HeaderBlockCheck::Problem::none);
  EXPECT_EQ(check_header_block(block + "c: d\r\n\r\n", 3).problem, HeaderBlockCheck::Problem::too_many_fields);
}

TEST(HttpUtil, ErrorBodyStaysValidJsonForInvalidUtf8) {
  // Found by fuzz_ids: a request path with invalid UTF-8, quoted in a 404, threw.
  const std::string body = error_body("No route for /v1/\xc3\x28.", "invalid_request_error", "not_found");
  EXPECT_TRUE(nlohmann::json::accept(body)) << body;
}

namespace coordinator {
namespace {
TEST(HttpUtil, IEqualsFoldsAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Content-Type", "content-type"));
  EXPECT_TRUE(iequals("X-API-KEY", "x-api-key"));
  EXPECT_FALSE(iequals("content-type", "content-typ"));
  EXPECT_FALSE(iequals("a[", "A{"));  // '[' and '{' differ by the case bit but are not letters
  EXPECT_FALSE(iequals("\xc3\x84", "\xc3\xa4"));
}
}  // namespace
}  // namespace coordinator
