-- wrk script for bench/intake.py: POST /v1/instructions with a unique reference
-- and Idempotency-Key on every request (a repeat would be a 202 replay or a 409).
--
--   wrk -t1 -c64 -d10s --latency -s bench/intake.lua URL -- PREFIX API_KEY EXPECTED_STATUS
--
-- PREFIX makes the references unique per run and phase; each thread adds its id
-- and a counter. done() prints one line "BENCH_JSON {...}" for intake.py to parse.

local body_template = '{"reference":"%s","type":"credit_transfer","amount":"1250.00","currency":"EUR",'
  .. '"debtor":{"name":"HE Appliances Europe GmbH","account":{"iban":"DE89370400440532013000"},'
  .. '"agent":{"bic":"COBADEFFXXX"}},'
  .. '"creditor":{"name":"Nordic Parts AB","account":{"iban":"SE4550000000058398257466"}},'
  .. '"remittance_information":"Invoice 123","requested_execution_date":"%s",'
  .. '"urgency":"standard","metadata":{"order":"SO-778"}}'

local threads = {}
local next_tid = 0

-- per-thread globals (read back with thread:get in done)
tid = 0
ok = 0
bad = 0
first_bad = 0
counter = 0

local prefix = "B"
local expected = 202
local headers = {}
local execution_date = "2026-11-27"

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "B"
  expected = tonumber(args[3] or "202")
  execution_date = args[4] or execution_date
  headers["Authorization"] = "Bearer " .. (args[2] or "none")
  headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local ref = prefix .. "-" .. tid .. "-" .. counter
  headers["Idempotency-Key"] = ref
  return wrk.format("POST", "/v1/instructions", headers, string.format(body_template, ref, execution_date))
end

function response(status, _headers, _body)
  if status == expected then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status
    end
  end
end

function done(summary, latency, _requests)
  local total_ok, total_bad, sample = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    if sample == 0 then
      sample = thread:get("first_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"unexpected_status":%d,"first_unexpected_status":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, total_ok, total_bad, sample,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
