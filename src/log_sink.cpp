#include "coordinator/log_sink.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <string>

namespace coordinator {

namespace {

constexpr std::size_t kFlushAt = std::size_t{16} * 1024;
// The longest an access-log line waits when nothing else is logged.
constexpr auto kFlushEvery = std::chrono::seconds(1);

std::shared_ptr<spdlog::logger> access;  // set once at start-up, before any request

class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BufferedStderrSink() : owner_(::getpid()) { pending_.reserve(2 * kFlushAt); }
  ~BufferedStderrSink() override { write_out(); }
  BufferedStderrSink(const BufferedStderrSink&) = delete;
  BufferedStderrSink& operator=(const BufferedStderrSink&) = delete;

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    pending_.append(formatted.data(), formatted.size());
    if (pending_.size() >= kFlushAt) write_out();
  }
  void flush_() override { write_out(); }

 private:
  void write_out() {
    // A forked process (the orphan guard) must not write its parent's lines again.
    if (::getpid() != owner_) pending_.clear();
    std::size_t done = 0;
    while (done < pending_.size()) {
      const ssize_t n = ::write(STDERR_FILENO, pending_.data() + done, pending_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // stderr is gone: the lines cannot go anywhere
      done += static_cast<std::size_t>(n);
    }
    pending_.clear();
  }

  const pid_t owner_;
  std::string pending_;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_coordinator_logger() {
  spdlog::sink_ptr sink;
  if (::isatty(STDERR_FILENO) == 1) {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  } else {
    sink = std::make_shared<BufferedStderrSink>();
  }
  auto logger = std::make_shared<spdlog::logger>("coordinator", sink);
  // Every line but an access line goes out at once, and takes the access
  // lines gathered before it along: the order on stderr is kept.
  logger->flush_on(spdlog::level::info);
  access = std::make_shared<spdlog::logger>("access", sink);
  access->flush_on(::isatty(STDERR_FILENO) == 1 ? spdlog::level::info : spdlog::level::warn);
  spdlog::register_logger(access);
  spdlog::flush_every(kFlushEvery);
  return logger;
}

spdlog::logger& access_logger() {
  return access ? *access : *spdlog::default_logger();
}

}  // namespace coordinator
