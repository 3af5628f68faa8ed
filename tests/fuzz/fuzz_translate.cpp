// The other protocols' front ends (issue 15): what clients send and what the
// child streams back, through the translators.
//  - each protocol's to_chat_request of the input (when it is a JSON object)
//    never throws; an accepted request is a chat request whose messages each
//    have a role and string (or null) content; count_tokens never throws;
//  - ProtocolAnswer fed the input as the child's SSE stream gives the same
//    bytes whether the input comes whole or in socket-sized pieces, and nothing
//    after the stream has ended;
//  - ProtocolAnswer::whole of the input as a 200 or a 429 body is a JSON body.
// Input: the whole input is the client body, the child's stream and its answer.
#include <nlohmann/json.hpp>

#include "coordinator/protocol_answer.hpp"
#include "coordinator/translate/anthropic_api.hpp"
#include "coordinator/translate/gemini_api.hpp"
#include "coordinator/translate/responses_api.hpp"
#include "fuzz_util.hpp"

namespace {

using json = nlohmann::json;
using coordinator::ClientProtocol;
using coordinator::ProtocolAnswer;
namespace translate = coordinator::translate;

constexpr ClientProtocol kProtocols[] = {ClientProtocol::responses, ClientProtocol::anthropic, ClientProtocol::gemini};

translate::Options options() {
  static const translate::ModelAliases aliases{{"alias", "target"}};
  translate::Options out;
  out.model_aliases = &aliases;
  out.id_base = "fuzz";
  out.created = 1700000000;
  return out;
}

void check_chat_request(const translate::Result<json>& chat) {
  if (!chat.ok()) {
    FUZZ_CHECK(chat.error().status >= 400 && chat.error().status < 600);
    return;
  }
  const json& request = chat.value();
  FUZZ_CHECK(request.is_object() && request.contains("messages") && request["messages"].is_array());
  for (const json& message : request["messages"]) {
    FUZZ_CHECK(message.is_object() && message.contains("role") && message["role"].is_string());
    FUZZ_CHECK(!message.contains("content") || message["content"].is_string() || message["content"].is_null());
  }
  (void)translate::dump(request);
}

void check_requests(std::string_view input) {
  const json body = json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return;
  check_chat_request(translate::responses::to_chat_request(body, options()));
  check_chat_request(translate::anthropic::to_chat_request(body, options()));
  check_chat_request(translate::gemini::to_chat_request(body, "gemini-fuzz", true, options()));
  (void)translate::anthropic::count_tokens(body, options());
}

void check_stream(std::string_view input, ClientProtocol protocol) {
  const json request = {{"model", "m"}, {"max_tokens", 8}, {"messages", json::array()}, {"input", "x"}};
  ProtocolAnswer whole(protocol, request, "m", options());
  std::string at_once = whole.stream_start();
  at_once += whole.stream_bytes(input);
  at_once += whole.stream_finish();
  FUZZ_CHECK(whole.stream_bytes("data: {\"choices\":[]}\n\n").empty());

  ProtocolAnswer split(protocol, request, "m", options());
  std::string piecewise = split.stream_start();
  fuzz::Pieces pieces(input);
  for (std::string_view rest = input; !rest.empty();) {
    const std::size_t n = std::min(rest.size(), pieces.next());
    piecewise += split.stream_bytes(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  piecewise += split.stream_finish();
  FUZZ_CHECK(piecewise == at_once);
}

void check_whole(std::string_view input, ClientProtocol protocol) {
  const ProtocolAnswer answer(protocol, json::object(), "m", options());
  for (const unsigned status : {200U, 429U}) {
    const ProtocolAnswer::Whole whole = answer.whole(status, input);
    FUZZ_CHECK(whole.status >= 200 && whole.status < 600);
    FUZZ_CHECK(json::accept(whole.body));
  }
  ProtocolAnswer stream(protocol, json::object(), "m", options());
  (void)stream.stream_from_whole(input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);
  check_requests(input);
  for (const ClientProtocol protocol : kProtocols) {
    check_stream(input, protocol);
    check_whole(input, protocol);
  }
  return 0;
}
