#include "coordinator/routes.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace coordinator {
namespace {

struct Expected {
  std::string path;
  RouteId id;
  bool needs_key;  // with --protect-metrics off
};

TEST(Routes, EveryPathFindsItsHandler) {
  const std::vector<Expected> cases = {
      {"/live", RouteId::live, false},
      {"/ready", RouteId::readiness, false},
      {"/health", RouteId::readiness, false},
      {"/metrics", RouteId::metrics, false},
      {"/", RouteId::status_page, false},
      {"/status", RouteId::status_page, false},
      {"/v1/models", RouteId::models, true},
      {"/v1/chat/completions", RouteId::chat_completions, true},
      {"/v1/cancel/abc1234", RouteId::cancel, true},
      {"/v1/cancel/", RouteId::cancel, true},
      {"/admin/children", RouteId::admin, true},
      {"/admin/anything", RouteId::admin, true},
      {"/admin/", RouteId::admin, true},
      // Unknown paths under /v1/ still need a key: a 401 comes before the 404.
      {"/v1/completions", RouteId::not_found, true},
      {"/v1/models/x", RouteId::not_found, true},
      {"/v1/", RouteId::not_found, true},
      // Exact routes match exactly; no key outside /v1/ and /admin/.
      {"/v1", RouteId::not_found, false},
      {"/admin", RouteId::not_found, false},
      {"/live/", RouteId::not_found, false},
      {"/readyz", RouteId::not_found, false},
      {"/metrics2", RouteId::not_found, false},
      {"", RouteId::not_found, false},
      {"http://host/v1/models", RouteId::not_found, false},
  };
  for (const Expected& expected : cases) {
    const Route& route = match_route(expected.path);
    EXPECT_EQ(route.id, expected.id) << expected.path;
    EXPECT_EQ(needs_key(route, false), expected.needs_key) << expected.path;
  }
}

TEST(Routes, MetricsNeedAKeyOnlyWhenProtected) {
  EXPECT_FALSE(needs_key(match_route("/metrics"), false));
  EXPECT_TRUE(needs_key(match_route("/metrics"), true));
  EXPECT_FALSE(needs_key(match_route("/live"), true));
  EXPECT_FALSE(needs_key(match_route("/nowhere"), true));
}

TEST(Routes, MethodsPerRoute) {
  const Methods health = match_route("/ready").methods;
  EXPECT_TRUE(method_allowed(health, http::verb::get));
  EXPECT_TRUE(method_allowed(health, http::verb::head));
  EXPECT_FALSE(method_allowed(health, http::verb::post));
  EXPECT_EQ(allow_header(health), "GET, HEAD");

  const Methods models = match_route("/v1/models").methods;
  EXPECT_TRUE(method_allowed(models, http::verb::get));
  EXPECT_FALSE(method_allowed(models, http::verb::head));
  EXPECT_EQ(allow_header(models), "GET");

  for (const char* path : {"/v1/chat/completions", "/v1/cancel/x"}) {
    const Methods post = match_route(path).methods;
    EXPECT_TRUE(method_allowed(post, http::verb::post)) << path;
    EXPECT_FALSE(method_allowed(post, http::verb::get)) << path;
    EXPECT_FALSE(method_allowed(post, http::verb::put)) << path;
    EXPECT_EQ(allow_header(post), "POST") << path;
  }
  // The admin handler and the 404 take every method (admin checks the peer first).
  for (const char* path : {"/admin/children", "/nowhere", "/v1/nowhere"}) {
    const Methods any = match_route(path).methods;
    EXPECT_TRUE(method_allowed(any, http::verb::delete_)) << path;
    EXPECT_TRUE(method_allowed(any, http::verb::unknown)) << path;
  }
}

TEST(Routes, AdminTable) {
  EXPECT_EQ(match_admin_route("/admin/children").id, RouteId::admin_children);
  EXPECT_EQ(match_admin_route("/admin/children").methods, Methods::get);
  EXPECT_EQ(match_admin_route("/admin/reload").id, RouteId::admin_reload);
  EXPECT_EQ(match_admin_route("/admin/reload").methods, Methods::post);
  EXPECT_EQ(match_admin_route("/admin/children/a/restart").id, RouteId::admin_child_action);
  EXPECT_EQ(match_admin_route("/admin/children/").id, RouteId::admin_child_action);
  // Anything else under /admin/ is a POST route that does not exist: 405 unless POST, then 404.
  for (const char* path : {"/admin/", "/admin/childrenx", "/admin/reload/now", "/admin/nothing"}) {
    EXPECT_EQ(match_admin_route(path).id, RouteId::not_found) << path;
    EXPECT_EQ(match_admin_route(path).methods, Methods::post) << path;
  }
}

TEST(Routes, ChildActionPaths) {
  const ChildAction restart = parse_child_action("/admin/children/child-1/restart");
  EXPECT_EQ(restart.name, "child-1");
  EXPECT_EQ(restart.action, "restart");
  // The last slash splits: a name may hold one (it then matches no child).
  const ChildAction nested = parse_child_action("/admin/children/a/b/drain");
  EXPECT_EQ(nested.name, "a/b");
  EXPECT_EQ(nested.action, "drain");
  const ChildAction no_action = parse_child_action("/admin/children/child-1/");
  EXPECT_EQ(no_action.name, "child-1");
  EXPECT_EQ(no_action.action, "");
  for (const char* path : {"/admin/children/child-1", "/admin/children/", "/admin/reload", "/admin/childrenx/a/b"}) {
    const ChildAction none = parse_child_action(path);
    EXPECT_EQ(none.name, "") << path;
    EXPECT_EQ(none.action, "") << path;
  }
}

TEST(Routes, PathDropsTheQuery) {
  EXPECT_EQ(path_of("/ready?verbose=1"), "/ready");
  EXPECT_EQ(path_of("/v1/models"), "/v1/models");
  EXPECT_EQ(path_of("?x"), "");
}

}  // namespace
}  // namespace coordinator
