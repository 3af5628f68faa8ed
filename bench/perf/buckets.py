#!/usr/bin/env python3
"""Buckets of a perf.data (dwarf call graphs): exclusive by what the sample is doing, and inclusive
shares of named frames. Usage: buckets.py perf.data"""
import re, subprocess, sys, collections
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso", "--no-inline"], capture_output=True,
                     text=True, errors="replace").stdout
samples = []
cur = []
for line in out.splitlines():
    if not line.strip():
        if cur: samples.append(cur)
        cur = []
        continue
    m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
    if m:
        cur.append((m.group(1), m.group(2)))
if cur: samples.append(cur)
N = len(samples)
SYS = [("sendmsg", r"__sys_sendmsg|__x64_sys_sendmsg"), ("recvmsg", r"__sys_recvmsg|__x64_sys_recvmsg"),
       ("writev", r"do_writev|__x64_sys_writev"),
       ("recvfrom", r"__sys_recvfrom|__x64_sys_recvfrom"), ("epoll_ctl", r"do_epoll_ctl|__x64_sys_epoll_ctl"),
       ("write", r"ksys_write|__x64_sys_write$"), ("epoll_wait", r"do_epoll_wait|__x64_sys_epoll_wait"),
       ("timerfd_settime", r"timerfd"), ("accept", r"accept"), ("close", r"__x64_sys_close"),
       ("getsockopt", r"getsockopt"), ("read", r"ksys_read|__x64_sys_read$")]
MALLOC = re.compile(r"^(_int_malloc|malloc|_int_free|free|cfree.*|unlink_chunk.*|malloc_consolidate|__libc_malloc|__libc_free|tcache.*|operator new.*|operator delete.*|_int_realloc|realloc|__GI___libc_free|__GI___libc_malloc)$")
excl = collections.Counter()
for s in samples:
    syms = [x[0] for x in s]
    dsos = [x[1] for x in s]
    cat = None
    if "kernel" in dsos[0]:
        for name, pat in SYS:
            if any(re.search(pat, f) for f in syms):
                cat = "syscall " + name; break
        if cat is None:
            cat = "kernel other (" + ("irq/softirq" if any("irq" in f for f in syms) else syms[0]) + ")"
    elif MALLOC.match(syms[0]):
        cat = "malloc/free"
    elif "clock_gettime" in syms[0] or "vdso" in dsos[0]:
        cat = "clock_gettime (vdso)"
    elif "libc" in dsos[0] and re.search(r"mem(cpy|move|set|chr|cmp)|str", syms[0]):
        cat = "libc mem*/str*"
    elif "libc" in dsos[0] and re.search(r"pthread_mutex", syms[0]):
        cat = "pthread_mutex (asio scheduler)"
    elif "libc" in dsos[0] and re.search(r"sendmsg|recvmsg|recv|send|write|epoll|syscall", syms[0]):
        cat = "libc syscall wrapper"
    else:
        cat = "user code"
    excl[cat] += 1
print(f"samples {N}")
print("== exclusive, by what the sample does")
for k, v in excl.most_common():
    print(f"{100*v/N:6.2f}%  {k}")
INC = [("nlohmann json (check_json)", r"coordinator::check_json"),
       ("log_access (spdlog)", r"coordinator::log_access"),
       ("write_head", r"Relay::write_head"),
       ("ostringstream", r"basic_ostringstream|basic_ostream|operator<<"),
       ("build_upstream_request", r"build_upstream_request"),
       ("UpstreamPool::take", r"UpstreamPool::take"),
       ("UpstreamPool::give_back", r"UpstreamPool::give_back"),
       ("watch_client", r"watch_client"),
       ("Relay ctor", r"Relay::Relay"),
       ("Beast request parser (server)", r"basic_parser<true"),
       ("Beast response parser (relay)", r"basic_parser<false"),
       ("Beast serializer", r"http::serializer<"),
       ("check_header_block", r"check_header_block"),
       ("basic_fields (insert/set/find/dtor)", r"basic_fields<.*>::(insert|set|find|new_element|~basic_fields|set_element|erase|operator\[\]|count|delete_element)"),
       ("Metrics", r"coordinator::Metrics::"),
       ("Dispatcher", r"coordinator::Dispatcher::"),
       ("Registry", r"coordinator::Registry::"),
       ("any_executor machinery", r"any_executor_base|any_executor<"),
       ("timer queue / expires", r"timer_queue|expires_after|expires_at|move_timer|schedule_timer|cancel_timer|deadline_timer|basic_waitable_timer|steady_timer"),
       ("malloc family", MALLOC.pattern),
       ("Clock::now/clock_gettime", r"clock_gettime|steady_clock::now"),
       ("make_shared (basic_stream impl)", r"make_shared|allocate_shared"),
       ("awaitable frame alloc", r"awaitable_frame.*operator new|thread_info_base::allocate|thread_info_base::deallocate"),
       ("epoll_reactor::start_op", r"epoll_reactor::start_op"),
       ("http::async_write (upstream req)", r"write_msg_op<.*basic_string_body"),
       ("co_spawn", r"co_spawn"),
       ("run_session", r"HttpServer::run_session"),
       ("route", r"HttpServer::route"),
       ("forward_request", r"coordinator::forward_request"),
       ]
print("== inclusive (samples with the frame on the stack)")
for name, pat in INC:
    r = re.compile(pat)
    n = sum(1 for s in samples if any(r.search(f) for f, _ in s))
    print(f"{100*n/N:6.2f}%  {name}")
# malloc callers: nearest coordinator/beast frame above malloc
print("== malloc/free samples by nearest named caller")
callers = collections.Counter()
for s in samples:
    if not MALLOC.match(s[0][0]): continue
    who = "?"
    for f, _ in s[1:]:
        if MALLOC.match(f): continue
        if re.search(r"coordinator::|basic_fields|basic_parser|awaitable|make_shared|thread_info_base|spdlog|nlohmann|basic_string|flat_buffer|std::function|executor_function|reactive_socket|wait_handler|co_spawn", f):
            who = re.sub(r"<.*", "<>", f)[:110]; break
    callers[who] += 1
for k, v in callers.most_common(25):
    print(f"{100*v/N:6.2f}%  {k}")
print("== user-code leaf symbols (templates stripped)")
leaf = collections.Counter()
for s in samples:
    f, d = s[0]
    if "kernel" in d or MALLOC.match(f) or "vdso" in d: continue
    g = re.sub(r"<[^<>]*>", "", f)
    for _ in range(6): g = re.sub(r"<[^<>]*>", "", g)
    g = re.sub(r"\(.*", "", g)
    leaf[g[:100] + " [" + d.split("/")[-1][:12] + "]"] += 1
for k, v in leaf.most_common(45):
    print(f"{100*v/N:6.2f}%  {k}")
