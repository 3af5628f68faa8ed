#include "coordinator/upstream.hpp"

#include <netinet/tcp.h>
#include <spdlog/spdlog.h>

namespace coordinator {

void LogEscapedException::operator()(std::exception_ptr error) const {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected exception: {}", what, e.what());
  } catch (...) {
    spdlog::error("{}: unexpected non-standard exception", what);
  }
}

void set_no_delay(Socket& socket) {
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
}

awaitable<ChildConnection> connect_to_child(const std::string& host, int port, Clock::duration timeout,
                                            error_code& ec) {
  const auto executor = co_await net::this_coro::executor;
  auto stream = std::make_unique<TcpStream>(executor);
  std::vector<tcp::endpoint> endpoints;
  const auto address = net::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(address, static_cast<unsigned short>(port));
  } else {
    Resolver resolver(executor);
    const auto results = co_await resolver.async_resolve(host, std::to_string(port), use_awaitable_ec(ec));
    if (ec) {
      co_return nullptr;
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  stream->expires_after(timeout);
  co_await stream->async_connect(endpoints, use_awaitable_ec(ec));
  if (ec) {
    co_return nullptr;
  }
  stream->expires_never();
  set_no_delay(stream->socket());
  co_return stream;
}

UpstreamPool::UpstreamPool(std::size_t children, std::size_t max_idle_per_child, Clock::duration max_idle_age)
    : idle_(children), max_idle_per_child_(max_idle_per_child), max_idle_age_(max_idle_age) {}

ChildConnection UpstreamPool::take(std::size_t child) {
  auto& idle = idle_.at(child);
  const auto now = Clock::now();
  while (!idle.empty()) {
    Idle entry = std::move(idle.back());
    idle.pop_back();
    // Children close idle keep-alive connections themselves after a few seconds.
    if (now - entry.since > max_idle_age_) continue;
    return std::move(entry.stream);
  }
  return nullptr;
}

void UpstreamPool::give_back(std::size_t child, ChildConnection stream) {
  auto& idle = idle_.at(child);
  if (idle.size() >= max_idle_per_child_) idle.pop_front();
  stream->expires_never();
  idle.push_back({std::move(stream), Clock::now()});
}

http::request<http::string_body> simple_request_message(
    const std::string& host, int port, http::verb method, std::string target, std::string body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  http::request<http::string_body> request{method, target, 11};
  request.set(http::field::host, host + ":" + std::to_string(port));
  request.set(http::field::user_agent, "coordinator");
  for (const auto& [name, value] : headers) request.set(name, value);
  if (method == http::verb::post) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::move(body);
  }
  request.keep_alive(false);
  request.prepare_payload();
  return request;
}

awaitable<std::optional<SimpleResponse>> simple_request(std::string host, int port, http::verb method,
                                                        std::string target, std::string body, Clock::duration timeout,
                                                        std::string& error,
                                                        std::vector<std::pair<std::string, std::string>> headers) {
  const auto deadline = Clock::now() + timeout;
  error_code ec;
  auto stream = co_await connect_to_child(host, port, timeout, ec);
  if (!stream) {
    error = "connect: " + ec.message();
    co_return std::nullopt;
  }
  auto request = simple_request_message(host, port, method, std::move(target), std::move(body), headers);
  stream->expires_at(deadline);
  std::optional<SimpleResponse> response = co_await exchange_simple_request(*stream, std::move(request), error);
  if (response) stream->socket().shutdown(Socket::shutdown_both, ec);
  co_return response;
}

}  // namespace coordinator
