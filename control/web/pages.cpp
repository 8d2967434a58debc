#include "control/web/pages.hpp"

#include <boost/beast/http/field.hpp>
#include <string>

#include "control/web/assets.hpp"

namespace sekisho::control::web {

namespace bhttp = boost::beast::http;

namespace {

const Asset* find_asset(std::string_view name) {
  for (const Asset& a : assets())
    if (a.name == name) return &a;
  return nullptr;
}

http::Response serve(const http::Call& c, std::string_view name) {
  const Asset* a = find_asset(name);
  if (!a) {
    http::Response r = http::json_error(c.req, http::Status::not_found, "no such resource");
    page_headers(r);
    return r;
  }
  http::Response r = http::make_response(c.req, http::Status::ok, std::string(a->content_type), std::string(a->bytes));
  page_headers(r);
  return r;
}

}  // namespace

void page_headers(http::Response& res) {
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
}

void add_web_routes(http::Router& router, http::Access access) {
  router.add({http::Verb::get}, "/", access, [](const http::Call& c) {
    http::Response r = http::make_response(c.req, http::Status::see_other, "text/plain; charset=utf-8", "/log\n");
    r.set(bhttp::field::location, "/log");
    page_headers(r);
    return r;
  });
  // Browsers ask for it on every page; no icon, and no 404 in their consoles.
  router.add({http::Verb::get}, "/favicon.ico", http::Access::open, [](const http::Call& c) {
    http::Response r = http::make_response(c.req, http::Status::no_content, "image/x-icon", "");
    page_headers(r);
    return r;
  });
  router.add({http::Verb::get}, "/login", http::Access::open, [](const http::Call& c) { return serve(c, "login.html"); });
  const std::pair<const char*, const char*> pages[] = {
      {"/log", "log.html"},         {"/message", "message.html"}, {"/quarantine", "quarantine.html"},
      {"/quarantine/view", "quarantine_view.html"}, {"/rules", "rules.html"}, {"/policy", "policy.html"},
  };
  for (auto [path, file] : pages)
    router.add({http::Verb::get}, path, access, [file = std::string(file)](const http::Call& c) { return serve(c, file); });
  router.add(
      {http::Verb::get}, "/static/", http::Access::open,
      [](const http::Call& c) {
        // Scripts and the style sheet only: the HTML shells go through their routes.
        if (c.rest.ends_with(".html") || c.rest.find('/') != std::string_view::npos) return serve(c, "");
        return serve(c, c.rest);
      },
      true);
}

}  // namespace sekisho::control::web
