#pragma once

#include <array>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstddef>
#include <memory>

namespace coordinator {

// The read buffer and the body chunk of one exchange with a child. Kept for
// the next exchange: 32 KiB per request is past malloc's thread cache, and
// going through its bins was the largest allocation cost of a proxied request.
struct ExchangeBuffers {
  static constexpr std::size_t kBytes = std::size_t{16} * 1024;
  ExchangeBuffers() { buffer.reserve(kBytes); }  // a typical answer's head and body in one read, not two
  boost::beast::flat_buffer buffer;
  // Not value-initialised: zero-filling 16 KiB per answer showed up in profiles.
  std::array<char, kBytes> chunk;
};

struct GiveBackExchangeBuffers {
  void operator()(ExchangeBuffers* buffers) const;
};
using PooledExchangeBuffers = std::unique_ptr<ExchangeBuffers, GiveBackExchangeBuffers>;

// Spare buffers of the calling thread (the I/O thread), or new ones. At most
// kSpareExchangeBuffers stay allocated after a burst, as nginx keeps a buffer per connection.
PooledExchangeBuffers take_exchange_buffers();
inline constexpr std::size_t kSpareExchangeBuffers = 64;

}  // namespace coordinator
