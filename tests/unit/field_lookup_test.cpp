#include "coordinator/field_lookup.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

using namespace coordinator;
namespace http = boost::beast::http;

TEST(FieldLookup, FindsByCodeAndByUnknownNameAsBeastDoes) {
  http::request<http::string_body> request{http::verb::post, "/v1/chat/completions", 11};
  request.set(http::field::content_type, "application/json");
  request.set("x-request-id", "abc");
  request.set("X-API-Key", "k");
  EXPECT_EQ(field_value(request, http::field::content_type), "application/json");
  EXPECT_EQ(unknown_field_value(request, "X-Request-Id"), request["X-Request-Id"]);
  EXPECT_EQ(unknown_field_value(request, "x-api-key"), "k");
  EXPECT_EQ(field_value(request, http::field::authorization), "");
  EXPECT_EQ(unknown_field_value(request, "x-goog-api-key"), "");
  EXPECT_TRUE(has_field(request, http::field::content_type));
  EXPECT_FALSE(has_field(request, http::field::transfer_encoding));
}

TEST(FieldLookup, TheNamesLookedUpByNameAreUnknownToBeast) {
  // unknown_field_value compares only fields Beast has no code for: a name it
  // knows would never be found.
  for (const char* name : {"X-Request-Id", "X-API-Key", "x-goog-api-key", "X-Forwarded-For"}) {
    EXPECT_EQ(http::string_to_field(name), http::field::unknown) << name;
  }
}

TEST(FieldLookup, AnEmptyFieldIsPresent) {
  http::request<http::string_body> request{http::verb::post, "/", 11};
  request.set(http::field::transfer_encoding, "");
  EXPECT_TRUE(has_field(request, http::field::transfer_encoding));
}

TEST(FieldLookup, RepeatedFieldsGiveTheFirst) {
  http::request<http::string_body> request{http::verb::get, "/", 11};
  request.insert("X-Forwarded-For", "192.0.2.1");
  request.insert("X-Forwarded-For", "192.0.2.2");
  EXPECT_EQ(unknown_field_value(request, "X-Forwarded-For"), "192.0.2.1");
}

TEST(FieldLookup, KeepsAliveDecidesAsBeast) {
  struct Case {
    unsigned version;
    const char* connection;  // nullptr: no Connection field
  };
  const Case cases[] = {{11, nullptr},   {11, "close"}, {11, "keep-alive"}, {11, "Upgrade, Close"},
                        {11, "x-close"}, {10, nullptr}, {10, "keep-alive"}, {10, "Keep-Alive, foo"},
                        {10, "close"},   {11, ""},      {10, ""},           {11, " , close ,"}};
  for (const Case& c : cases) {
    http::request<http::string_body> request{http::verb::get, "/", c.version};
    if (c.connection != nullptr) request.set(http::field::connection, c.connection);
    EXPECT_EQ(keeps_alive(request), request.keep_alive())
        << "HTTP/" << c.version << " Connection: " << (c.connection ? c.connection : "(none)");
  }
}
