// The admin pages as served: headers on every answer (CSP, framing,
// referrer), routes and access, and a scan of the compiled-in assets for
// what the pages must never do (HTML from strings, inline script or style,
// event-handler attributes, eval).
#include <gtest/gtest.h>

#include <regex>

#include "control/auth/auth.hpp"
#include "control/web/assets.hpp"
#include "control/web/pages.hpp"

namespace sekisho::control::web {
namespace {

namespace bhttp = boost::beast::http;

http::Request get(const std::string& target) {
  http::Request r{http::Verb::get, target, 11};
  r.set(bhttp::field::host, "c.test");
  return r;
}

void expect_page_headers(const http::Response& r, const std::string& what) {
  EXPECT_EQ(r["Content-Security-Policy"], kContentSecurityPolicy) << what;
  EXPECT_EQ(r["X-Frame-Options"], "DENY") << what;
  EXPECT_EQ(r["Referrer-Policy"], "no-referrer") << what;
  EXPECT_EQ(r["X-Content-Type-Options"], "nosniff") << what;
}

TEST(WebPages, EveryPageAndAssetCarriesTheHeaders) {
  http::Router router;
  add_web_routes(router);
  for (std::string page : {"/login", "/log", "/message?id=SK1", "/quarantine", "/quarantine/view?id=Q1", "/rules",
                           "/policy"}) {
    http::Response r = router.handle(get(page));
    EXPECT_EQ(r.result(), http::Status::ok) << page;
    EXPECT_EQ(r[bhttp::field::content_type], "text/html; charset=utf-8") << page;
    EXPECT_NE(r.body().find("<!doctype html>"), std::string::npos) << page;
    expect_page_headers(r, page);
  }
  for (const Asset& a : assets()) {
    if (a.name.ends_with(".html")) continue;
    http::Response r = router.handle(get("/static/" + std::string(a.name)));
    EXPECT_EQ(r.result(), http::Status::ok) << a.name;
    EXPECT_EQ(std::string(r[bhttp::field::content_type]), std::string(a.content_type)) << a.name;
    EXPECT_EQ(r.body(), std::string(a.bytes)) << a.name;
    expect_page_headers(r, std::string(a.name));
  }
  http::Response root = router.handle(get("/"));
  EXPECT_EQ(root.result(), http::Status::see_other);
  EXPECT_EQ(root[bhttp::field::location], "/log");
  EXPECT_EQ(router.handle(get("/favicon.ico")).result(), http::Status::no_content);
}

TEST(WebPages, StaticServesOnlyTheAssetsByName) {
  http::Router router;
  add_web_routes(router);
  for (std::string t : {"/static/nope.js", "/static/log.html", "/static/../log.html", "/static/x/common.js",
                        "/static/%2e%2e/common.js"})
    EXPECT_EQ(router.handle(get(t)).result(), http::Status::not_found) << t;
  http::Request post = get("/static/common.js");
  post.method(http::Verb::post);
  EXPECT_EQ(router.handle(post).result(), http::Status::method_not_allowed);
}

TEST(WebPages, PagesNeedASessionButLoginAndAssetsDoNot) {
  http::Router router;
  add_web_routes(router);
  // An authenticator that knows nobody: as auth::Auth answers without a session.
  router.set_authenticator([](const http::Request& req, http::Access, int64_t) {
    http::Response r = http::make_response(req, http::Status::see_other, "text/plain", "");
    r.set(bhttp::field::location, "/login");
    return std::variant<http::Principal, http::Response>(std::move(r));
  });
  for (std::string page : {"/", "/log", "/message?id=1", "/quarantine", "/quarantine/view?id=1", "/rules", "/policy"})
    EXPECT_EQ(router.handle(get(page)).result(), http::Status::see_other) << page;
  EXPECT_EQ(router.handle(get("/login")).result(), http::Status::ok);
  EXPECT_EQ(router.handle(get("/static/login.js")).result(), http::Status::ok);
}

// What no page may contain. The pages build the DOM with createElement,
// text nodes and an attribute allow-list (common.js); this keeps it so.
TEST(WebAssets, NoHtmlFromStringsNoInlineScriptOrStyle) {
  const std::regex js_forbidden(R"(innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function|setAttribute\(\s*['"]on|\.srcdoc|javascript:)");
  const std::regex html_inline_script(R"(<script(?![^>]*\bsrc=)[^>]*>)", std::regex::icase);
  const std::regex html_handler(R"(<[^>]+\son[a-z]+\s*=)", std::regex::icase);
  const std::regex html_style(R"(<style|\sstyle\s*=)", std::regex::icase);
  size_t js = 0, html = 0;
  for (const Asset& a : assets()) {
    std::string text(a.bytes);
    if (a.name.ends_with(".js")) {
      ++js;
      std::smatch m;
      EXPECT_FALSE(std::regex_search(text, m, js_forbidden)) << a.name << ": " << m.str();
    } else if (a.name.ends_with(".html")) {
      ++html;
      EXPECT_FALSE(std::regex_search(text, html_inline_script)) << a.name;
      EXPECT_FALSE(std::regex_search(text, html_handler)) << a.name;
      EXPECT_FALSE(std::regex_search(text, html_style)) << a.name;
      EXPECT_NE(text.find("<meta charset=\"utf-8\">"), std::string::npos) << a.name;
    }
  }
  EXPECT_GE(js, 8u);
  EXPECT_GE(html, 7u);
}

}  // namespace
}  // namespace sekisho::control::web
