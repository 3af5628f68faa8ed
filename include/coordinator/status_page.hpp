#pragma once

#include <string_view>

namespace coordinator {

// The self-contained fleet status page served at GET / (src/status_page.html,
// embedded at build time: no external assets).
std::string_view status_page_html();

}  // namespace coordinator
