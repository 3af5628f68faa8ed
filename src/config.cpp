#include "coordinator/config.hpp"

#include <algorithm>

#include <array>
#include <cctype>
#include <limits>
#include <sstream>

namespace coordinator {

Duration to_duration(double seconds) {
  return std::chrono::round<Duration>(Seconds(seconds));
}

double to_seconds(Duration duration) {
  return std::chrono::duration_cast<Seconds>(duration).count();
}

std::optional<std::pair<std::size_t, std::size_t>> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= text.size() || slash > 6 || text.size() - slash > 7) {
    return std::nullopt;
  }
  const std::string k = text.substr(0, slash);
  const std::string n = text.substr(slash + 1);
  if (k.find_first_not_of("0123456789") != std::string::npos ||
      n.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const std::size_t index = std::stoul(k);
  const std::size_t count = std::stoul(n);
  if (count == 0 || index >= count) return std::nullopt;
  return std::make_pair(index, count);
}

std::variant<Upstream, std::string> parse_upstream(const std::string& text) {
  Upstream upstream;
  std::string url = text;
  const auto equals = text.find('=');
  const auto scheme = text.find("://");
  if (equals != std::string::npos && (scheme == std::string::npos || equals < scheme)) {
    upstream.name = text.substr(0, equals);
    url = text.substr(equals + 1);
    if (upstream.name.empty()) return std::string("empty name before '='");
    for (char c : upstream.name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) {
        return std::string("name may hold only letters, digits, '-', '_', '.' and ':'");
      }
    }
  }
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return std::string("must start with http:// (no TLS to children)");
  std::string rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return std::string("must not have a path");
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::string("must be http://HOST:PORT");
  upstream.host = rest.substr(0, colon);
  if (upstream.host.front() == '[' && upstream.host.back() == ']') {
    upstream.host = upstream.host.substr(1, upstream.host.size() - 2);
  }
  if (upstream.host.empty()) return std::string("empty host");
  const std::string port_text = rest.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return std::string("port must be a number");
  }
  upstream.port = std::stoi(port_text);
  if (upstream.port < 1 || upstream.port > kMaxPort) return std::string("port out of range");
  if (upstream.name.empty()) upstream.name = rest;
  return upstream;
}

std::variant<std::pair<std::string, std::string>, std::string> parse_model_alias(const std::string& text) {
  const auto equals = text.find('=');
  if (equals == std::string::npos) return std::string("expected FROM=TO");
  std::string from = text.substr(0, equals);
  std::string to = text.substr(equals + 1);
  if (from.empty() || to.empty()) return std::string("both names must be given (FROM=TO)");
  const auto has_space = [](const std::string& name) {
    return std::any_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c) != 0; });
  };
  if (has_space(from) || has_space(to)) return std::string("model names hold no spaces");
  return std::pair{std::move(from), std::move(to)};
}

std::variant<WebhookTarget, std::string> parse_webhook_url(const std::string& text) {
  WebhookTarget webhook;
  webhook.url = text;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return std::string("must not hold spaces or control characters");
  }
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  webhook.tls = text.rfind(kHttps, 0) == 0;
  if (webhook.tls) webhook.port = 443;
  if (!webhook.tls && text.rfind(kHttp, 0) != 0) return std::string("must start with http:// or https://");
  const std::string rest = text.substr(webhook.tls ? kHttps.size() : kHttp.size());
  if (rest.find('#') != std::string::npos) return std::string("must not have a fragment (#)");
  const auto path_start = rest.find_first_of("/?");
  const std::string authority = rest.substr(0, path_start);
  webhook.target = path_start == std::string::npos ? "/" : rest.substr(path_start);
  if (webhook.target.front() == '?') webhook.target.insert(0, "/");
  if (authority.find('@') != std::string::npos) return std::string("must not hold a user or password");
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) return std::string("unclosed '[' in the host");
    webhook.host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::string("unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return std::string("port must be a number");
    }
  } else {
    const auto colon = authority.find(':');
    webhook.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return std::string("port must be a number");
    }
  }
  if (webhook.host.empty()) return std::string("empty host");
  for (const char c : webhook.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == ':')) {
      return std::string("host may hold only letters, digits, '-', '_', '.' (or an IPv6 address in [])");
    }
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
      return std::string("port must be a number");
    }
    webhook.port = std::stoi(port_text);
    if (webhook.port < 1 || webhook.port > kMaxPort) return std::string("port out of range");
  }
  return webhook;
}

std::optional<std::uint64_t> parse_byte_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  std::uint64_t value = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (suffix.empty()) return value;
  if (suffix.size() != 1) return std::nullopt;
  int shift = 0;
  switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    default:
      return std::nullopt;
  }
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

ChildPorts assign_ports(const Config& config, std::size_t index) {
  const int offset = static_cast<int>(index) * config.port_step;
  return {config.base_api_port + offset, config.base_stream_port + offset, config.base_camoufox_port + offset};
}

std::optional<std::string> validate_port_layout(const Config& config, std::size_t child_count) {
  if (child_count == 0) return std::nullopt;
  struct Range {
    const char* flag;
    long first;
    long last;
  };
  const long span = static_cast<long>(child_count - 1) * config.port_step;
  const std::array<Range, 3> ranges{{
      {"--base-api-port", config.base_api_port, config.base_api_port + span},
      {"--base-stream-port", config.base_stream_port, config.base_stream_port + span},
      {"--base-camoufox-port", config.base_camoufox_port, config.base_camoufox_port + span},
  }};
  std::ostringstream reason;
  for (const auto& range : ranges) {
    if (range.first < 1 || range.last > kMaxPort) {
      reason << range.flag << " " << range.first << " with " << child_count << " children and step " << config.port_step
             << " needs ports up to " << range.last << ", beyond " << kMaxPort;
      return reason.str();
    }
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    for (std::size_t j = i + 1; j < ranges.size(); ++j) {
      if (ranges[i].first <= ranges[j].last && ranges[j].first <= ranges[i].last) {
        reason << "port ranges overlap: " << ranges[i].flag << " " << ranges[i].first << "-" << ranges[i].last
               << " and " << ranges[j].flag << " " << ranges[j].first << "-" << ranges[j].last << " for " << child_count
               << " children";
        return reason.str();
      }
    }
  }
  for (const auto& range : ranges) {
    if (config.port >= range.first && config.port <= range.last) {
      reason << "--coordinator-port " << config.port << " falls inside the " << range.flag << " range " << range.first
             << "-" << range.last;
      return reason.str();
    }
  }
  return std::nullopt;
}

}  // namespace coordinator
