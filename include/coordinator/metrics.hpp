#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "coordinator/registry.hpp"

namespace coordinator {

// A Prometheus label value, escaped as the text exposition format requires (\\, \", \n).
std::string prometheus_label(std::string_view value);

// Counters and histograms of the data path, rendered in the Prometheus text
// exposition format together with the fleet's state from the registry.
class Metrics {
 public:
  Metrics();

  void observe_request(std::string_view route, unsigned status, std::string_view child, double seconds);
  void observe_stream_ttfb(double seconds);
  void count_retry() { ++retries_; }
  void count_cancel() { ++cancels_; }
  void count_connect_error(const std::string& child) { ++connect_errors_[child]; }

  // Everything, with the gauges read now.
  std::string render(const Registry& registry, std::size_t in_flight, std::size_t queued) const;

  // A request path reduced to the route it matched (bounded label values).
  static std::string_view route_of(std::string_view path);

 private:
  static constexpr std::array<double, 14> kBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,     2.5,  5,     10,   30,  60,   300};
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double value);
  };

  std::chrono::steady_clock::time_point started_;
  // Transparent comparators: a request is counted without building its key's strings.
  // Written out: clang 14 cannot compare a tuple of views with a tuple of strings.
  struct RequestKeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const std::string_view a_route = std::get<0>(a), b_route = std::get<0>(b);
      if (a_route != b_route) return a_route < b_route;
      if (std::get<1>(a) != std::get<1>(b)) return std::get<1>(a) < std::get<1>(b);
      return std::string_view(std::get<2>(a)) < std::string_view(std::get<2>(b));
    }
  };
  std::map<std::tuple<std::string, unsigned, std::string>, std::uint64_t, RequestKeyLess> requests_;
  std::map<std::string, Histogram, std::less<>> durations_;
  Histogram stream_ttfb_;
  std::uint64_t retries_ = 0;
  std::uint64_t cancels_ = 0;
  std::map<std::string, std::uint64_t> connect_errors_;
};

}  // namespace coordinator
