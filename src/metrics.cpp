#include "coordinator/metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace coordinator {

// Label values are escaped as the exposition format requires.
std::string prometheus_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

namespace {

std::string label(std::string_view value) {
  return prometheus_label(value);
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::size_t open_fds() {
  std::size_t count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.' ? 1 : 0;
    ::closedir(dir);
    if (count > 0) --count;  // the descriptor of the listing itself
  }
  return count;
}

void header(std::ostringstream& out, std::string_view name, std::string_view type, std::string_view help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

}  // namespace

Metrics::Metrics() : started_(std::chrono::steady_clock::now()) {}

void Metrics::Histogram::observe(double value) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (value <= kBuckets[i]) ++counts[i];
  }
  ++count;
  sum += value;
}

void Metrics::observe_request(std::string_view route, unsigned status, std::string_view child, double seconds) {
  auto count = requests_.find(std::make_tuple(route, status, child));
  if (count == requests_.end()) {
    count = requests_.emplace(std::make_tuple(std::string(route), status, std::string(child)), 0).first;
  }
  ++count->second;
  auto duration = durations_.find(route);
  if (duration == durations_.end()) duration = durations_.emplace(std::string(route), Histogram{}).first;
  duration->second.observe(seconds);
}

void Metrics::observe_stream_ttfb(double seconds) {
  stream_ttfb_.observe(seconds);
}

std::string_view Metrics::route_of(std::string_view path) {
  for (std::string_view known : {"/live", "/ready", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/"}) {
    if (path == known) return known;
  }
  if (path.substr(0, 11) == "/v1/cancel/") return "/v1/cancel";
  if (path.substr(0, 7) == "/admin/") return "/admin";
  return "other";
}

std::string Metrics::render(const Registry& registry, std::size_t in_flight, std::size_t queued) const {
  std::ostringstream out;
  out.precision(9);
  header(out, "coordinator_requests_total", "counter", "Requests answered, by route, status and child.");
  for (const auto& [key, count] : requests_) {
    const auto& [route, status, child] = key;
    out << "coordinator_requests_total{route=\"" << label(route) << "\",status=\"" << status << "\",child=\""
        << label(child) << "\"} " << count << '\n';
  }
  auto histogram = [&](std::string_view name, const Histogram& h, const std::string& labels) {
    const std::string prefix = labels.empty() ? "" : labels + ",";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      out << name << "_bucket{" << prefix << "le=\"" << kBuckets[i] << "\"} " << h.counts[i] << '\n';
    }
    out << name << "_bucket{" << prefix << "le=\"+Inf\"} " << h.count << '\n';
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out << name << "_sum" << braces << ' ' << h.sum << '\n' << name << "_count" << braces << ' ' << h.count << '\n';
  };
  header(out, "coordinator_request_duration_seconds", "histogram", "Time from request to the end of its answer.");
  for (const auto& [route, h] : durations_)
    histogram("coordinator_request_duration_seconds", h, "route=\"" + label(route) + "\"");
  header(out, "coordinator_stream_ttfb_seconds", "histogram", "Time to the first byte of streamed answers.");
  histogram("coordinator_stream_ttfb_seconds", stream_ttfb_, "");

  header(out, "coordinator_requests_in_flight", "gauge", "Requests being answered.");
  out << "coordinator_requests_in_flight " << in_flight << '\n';
  header(out, "coordinator_requests_queued", "gauge", "Requests waiting for a free child.");
  out << "coordinator_requests_queued " << queued << '\n';

  header(out, "coordinator_child_state", "gauge", "1 for the state each child is in.");
  for (const Child& child : registry.children()) {
    for (ChildState state : kChildStates) {
      out << "coordinator_child_state{child=\"" << label(child.name) << "\",state=\"" << to_string(state) << "\"} "
          << (child.state == state ? 1 : 0) << '\n';
    }
  }
  auto per_child = [&](std::string_view name, std::string_view help, auto field) {
    header(out, name, "counter", help);
    for (const Child& child : registry.children()) {
      out << name << "{child=\"" << label(child.name) << "\"} " << field(child) << '\n';
    }
  };
  per_child("coordinator_child_restarts_total", "Restarts of each child.", [](const Child& c) { return c.restarts; });
  per_child("coordinator_child_health_check_failures_total", "Failed health checks.",
            [](const Child& c) { return c.health_failures; });
  per_child("coordinator_child_forward_failures_total", "Forwarded requests a child failed.",
            [](const Child& c) { return c.failures; });
  per_child("coordinator_child_cooldowns_total", "Times a child was rate limited (429).",
            [](const Child& c) { return c.cooldowns; });
  per_child("coordinator_child_ejections_total", "Times a child was ejected after a run of server errors (5xx).",
            [](const Child& c) { return c.ejections; });
  per_child("coordinator_child_served_total", "Requests a child answered.", [](const Child& c) { return c.served; });
  header(out, "coordinator_child_in_flight", "gauge", "Requests each child is serving.");
  for (const Child& child : registry.children()) {
    out << "coordinator_child_in_flight{child=\"" << label(child.name) << "\"} " << child.in_flight << '\n';
  }
  header(out, "coordinator_upstream_connect_errors_total", "counter", "Failed connections to children.");
  for (const auto& [child, count] : connect_errors_) {
    out << "coordinator_upstream_connect_errors_total{child=\"" << label(child) << "\"} " << count << '\n';
  }
  header(out, "coordinator_retries_total", "counter", "Requests retried on another child.");
  out << "coordinator_retries_total " << retries_ << '\n';
  header(out, "coordinator_cancels_total", "counter", "Cancels sent to children.");
  out << "coordinator_cancels_total " << cancels_ << '\n';

  header(out, "coordinator_uptime_seconds", "gauge", "Seconds since the coordinator started.");
  out << "coordinator_uptime_seconds "
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count() << '\n';
  header(out, "coordinator_resident_memory_bytes", "gauge", "Resident memory of the coordinator process.");
  out << "coordinator_resident_memory_bytes " << resident_bytes() << '\n';
  header(out, "coordinator_open_fds", "gauge", "Open file descriptors of the coordinator process.");
  out << "coordinator_open_fds " << open_fds() << '\n';
  return out.str();
}

}  // namespace coordinator
