#include "coordinator/exchange_buffers.hpp"

#include <vector>

namespace coordinator {

namespace {

// A buffer grown past this by a large head is freed, not kept at that size.
constexpr std::size_t kMaxKeptBufferBytes = std::size_t{64} * 1024;

std::vector<std::unique_ptr<ExchangeBuffers>>& spare_buffers() {
  thread_local std::vector<std::unique_ptr<ExchangeBuffers>> spare;
  return spare;
}

}  // namespace

void GiveBackExchangeBuffers::operator()(ExchangeBuffers* buffers) const {
  std::unique_ptr<ExchangeBuffers> owned(buffers);
  auto& spare = spare_buffers();
  if (spare.size() >= kSpareExchangeBuffers || owned->buffer.capacity() > kMaxKeptBufferBytes) return;
  owned->buffer.clear();
  spare.push_back(std::move(owned));
}

PooledExchangeBuffers take_exchange_buffers() {
  auto& spare = spare_buffers();
  if (spare.empty()) return PooledExchangeBuffers(new ExchangeBuffers);
  PooledExchangeBuffers buffers(spare.back().release());
  spare.pop_back();
  return buffers;
}

}  // namespace coordinator
