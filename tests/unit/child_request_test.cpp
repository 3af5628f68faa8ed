#include "coordinator/child_request.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace coordinator {
namespace {

http::request<http::string_body> client_request(http::verb method, std::string body) {
  http::request<http::string_body> request{method, "/v1/chat/completions?x=1", 11};
  request.set(http::field::host, "coordinator:2048");
  request.set(http::field::content_type, "application/json");
  request.set(http::field::authorization, "Bearer k");
  request.set(http::field::connection, "keep-alive, X-Drop-Me");
  request.set("X-Drop-Me", "1");
  request.set(http::field::expect, "100-continue");
  request.set(http::field::te, "trailers");
  request.set("X-Keep", "yes");
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

// What the coordinator sent before: a copied request<string_body> with the
// same edits, serialized by Beast.
std::string beast_serialized(const http::request<http::string_body>& original, const std::string& forwarded_for,
                             const std::string& host) {
  http::request<http::string_body> copy{original.method(), original.target(), 11};
  copy.set(http::field::content_type, original[http::field::content_type]);
  copy.set(http::field::authorization, original[http::field::authorization]);
  copy.set("X-Keep", "yes");
  if (!forwarded_for.empty()) copy.set("X-Forwarded-For", forwarded_for);
  copy.body() = original.body();
  copy.keep_alive(true);
  copy.prepare_payload();
  copy.set(http::field::host, host);
  std::ostringstream out;
  out << copy;
  return std::move(out).str();
}

std::string sent(const ChildRequest& request) {
  std::string out;
  for (const auto& buffer : request.buffers()) out.append(static_cast<const char*>(buffer.data()), buffer.size());
  return out;
}

TEST(ChildRequest, SameBytesAsTheBeastCopyItReplaces) {
  const auto original = client_request(http::verb::post, R"({"messages":[]})");
  ChildRequest request(original, "10.0.0.7");
  request.address_to("127.0.0.1", 3100);
  EXPECT_EQ(sent(request), beast_serialized(original, "10.0.0.7", "127.0.0.1:3100"));
}

TEST(ChildRequest, HostChangesPerAttemptAndNothingElse) {
  const auto original = client_request(http::verb::post, "{}");
  ChildRequest request(original, "");
  request.address_to("127.0.0.1", 3100);
  const std::string first = request.head();
  request.address_to("127.0.0.1", 3101);
  EXPECT_EQ(request.head().substr(0, first.size() - 8), first.substr(0, first.size() - 8));
  EXPECT_TRUE(request.head().ends_with("Host: 127.0.0.1:3101\r\n\r\n"));
  EXPECT_EQ(sent(request), beast_serialized(original, "", "127.0.0.1:3101"));
}

TEST(ChildRequest, AppendsToAnEarlierForwardedFor) {
  auto original = client_request(http::verb::post, "{}");
  original.set("X-Forwarded-For", "192.0.2.1");
  ChildRequest request(original, "10.0.0.7");
  request.address_to("h", 1);
  EXPECT_NE(request.head().find("X-Forwarded-For: 192.0.2.1, 10.0.0.7\r\n"), std::string::npos);
  EXPECT_EQ(request.head().find("X-Forwarded-For: 192.0.2.1\r\n"), std::string::npos);
}

TEST(ChildRequest, DropsHopByHopAndConnectionListedFields) {
  const auto original = client_request(http::verb::post, "{}");
  ChildRequest request(original, "");
  request.address_to("h", 1);
  for (const char* dropped : {"Connection:", "X-Drop-Me:", "Expect:", "TE:", "coordinator:2048"}) {
    EXPECT_EQ(request.head().find(dropped), std::string::npos) << dropped;
  }
}

TEST(ChildRequest, AGetWithoutBodyHasNoLength) {
  http::request<http::string_body> original{http::verb::get, "/v1/models", 11};
  ChildRequest request(original, "");
  request.address_to("h", 1);
  EXPECT_EQ(request.head(), "GET /v1/models HTTP/1.1\r\nHost: h:1\r\n\r\n");
}

}  // namespace
}  // namespace coordinator
