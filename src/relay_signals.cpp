#include "coordinator/relay_signals.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace coordinator {

void interrupt_relay(const std::weak_ptr<RelaySignals>& weak, bool RelaySignals::*flag) {
  const auto signals = weak.lock();
  if (!signals) return;
  (*signals).*flag = true;
  error_code ignored;
  if (signals->upstream != nullptr) signals->upstream->socket().cancel(ignored);
}

void watch_client(const std::shared_ptr<RelaySignals>& signals) {
  if (signals->client == nullptr) return;
  signals->client_watched = true;
  signals->client->async_wait(Socket::wait_read, [signals](error_code ec) {
    if (ec || signals->client == nullptr) return;
    char byte = 0;
    const auto received = ::recv(signals->client->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (received > 0) return;  // a pipelined request: the client is still there
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      watch_client(signals);
      return;
    }
    signals->client_gone = true;
    signals->wake();
  });
}

}  // namespace coordinator
