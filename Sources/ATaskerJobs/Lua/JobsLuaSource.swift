/// The Lua side of module `atasker.jobs`: objects with methods over the Swift function `host["atasker.jobs"]`. Errors are
/// raised at the caller's line.
let jobsLuaSource = #"""
    -- atasker.jobs: durable queues (a store URL and a queue name), their workers and periodic jobs.
    local host = require "host"
    local atasker = require "atasker"
    local M = {}

    -- The Swift side: one function, the operation's name first.
    local swift = host["atasker.jobs"]
    local f = {}
    for _, name in ipairs {"queue", "put", "put_many", "get", "enter", "leave", "cancel", "info", "worker",
                           "periodic", "control"} do
      f[name] = function(...) return swift(name, ...) end
    end

    -- Calls a Swift function; its error is raised at the line that called the method (level 3).
    local function call(fn, ...)
      local ok, r = pcall(fn, ...)
      if not ok then error(tostring(r), 3) end
      return r
    end

    local Queue = {}
    Queue.__index = Queue
    M.Queue = Queue

    local function isqueue(q)
      return type(q) == "table" and getmetatable(q) == Queue
    end

    local function self_queue(q, method)
      if not isqueue(q) then
        error("atasker.jobs: call " .. method .. " as a method of a queue: q:" .. method .. "(...)", 3)
      end
    end

    -- jobs.queue(name, {store = "sqlite:///path.db", keep = seconds}): a durable queue.
    function M.queue(name, opts)
      return setmetatable(call(f.queue, name, opts), Queue)
    end

    -- q:put(value, {priority=, run_at= | delay=, max_attempts=, unique_key=, timeout=}) -> id, added
    function Queue:put(value, opts)
      self_queue(self, "put")
      local r = call(f.put, self.store, self.name, self.keep, value, opts)
      return r[1], r[2]
    end

    -- q:put_many({v1, v2, ...}, opts) -> {ids}, {added}: all in one transaction
    function Queue:put_many(values, opts)
      self_queue(self, "put_many")
      local r = call(f.put_many, self.store, self.name, self.keep, values, opts)
      return r[1], r[2]
    end

    function Queue:get_job(id)
      self_queue(self, "get_job")
      local r = call(f.get, self.store, id)
      return r
    end

    function Queue:cancel(id)
      self_queue(self, "cancel")
      local r = call(f.cancel, self.store, id)
      return r
    end

    function Queue:info()
      self_queue(self, "info")
      local r = call(f.info, self.store, self.name)
      return r
    end

    function Queue:__tostring()
      return "atasker.jobs.Queue '" .. self.name .. "' in " .. self.store
    end

    local Worker = {}
    Worker.__index = Worker
    M.Worker = Worker

    local function self_worker(w, method)
      if type(w) ~= "table" or getmetatable(w) ~= Worker then
        error("atasker.jobs: call " .. method .. " as a method of a worker: w:" .. method .. "(...)", 3)
      end
    end

    function Worker:start()
      self_worker(self, "start")
      call(f.control, self.name, "start")
      return self
    end

    function Worker:stop(opts)
      self_worker(self, "stop")
      local r = call(f.control, self.name, "stop", opts)
      return r
    end

    function Worker:is_active()
      self_worker(self, "is_active")
      local r = call(f.control, self.name, "is_active")
      return r
    end

    function Worker:info()
      self_worker(self, "info")
      local r = call(f.control, self.name, "info")
      return r
    end

    function Worker:__tostring()
      return "atasker.jobs.Worker '" .. self.name .. "'"
    end

    local worker_options = {
      queue = true, fn = true, name = true, concurrency = true, lease = true, poll = true, backoff = true,
      backoff_max = true, stop_when_empty = true, priority = true, mp = true, loop = true,
    }

    local function checkopts(fname, opts, known)
      if type(opts) ~= "table" then
        error(fname .. ": pass a table of options, got " .. type(opts), 3)
      end
      for k in pairs(opts) do
        if not known[k] then
          local names = {}
          for n in pairs(known) do names[#names + 1] = n end
          table.sort(names)
          error(fname .. ": unknown option '" .. tostring(k) .. "' (options are: " ..
                table.concat(names, ", ") .. ")", 3)
        end
      end
    end

    -- jobs.worker{queue = q, fn = function(value, job) ... end, name=, concurrency=, lease=, poll=, backoff=,
    --             backoff_max=, stop_when_empty=, priority=, mp=, loop=}
    function M.worker(opts)
      checkopts("jobs.worker", opts, worker_options)
      if not isqueue(opts.queue) then
        error("jobs.worker: option 'queue' must be a queue made by jobs.queue(name, opts)", 2)
      end
      if type(opts.fn) ~= "function" then
        error("jobs.worker: option 'fn' must be a function(value, job), got " .. type(opts.fn), 2)
      end
      local name = opts.name
      if name ~= nil and (type(name) ~= "string" or name == "") then
        error("jobs.worker: option 'name' must be a non-empty string", 2)
      end
      name = name or ("jobs:" .. opts.queue.name)
      -- The job's function runs inside xpcall, so that a failure comes back as data with its traceback (the
      -- worker records it; the task itself succeeds). A cancel is not caught: it ends the task.
      -- enter/leave mark the thread as running a job of this worker, so that w:stop() called from the job
      -- itself does not wait for the job to end.
      local userfn, enter, leave = opts.fn, f.enter, f.leave
      local function run(value, job)
        local tb
        enter(name)
        local ok, r = xpcall(userfn, function(e)
          tb = debug.traceback(nil, 2)
          return e
        end, value, job)
        leave(name)
        if ok then return {true, r} end
        return {false, tostring(r), tb}
      end
      local ok, starter = pcall(atasker.background_task, run,
        {priority = opts.priority, mp = opts.mp, loop = opts.loop, name = name})
      if not ok then error("jobs.worker: " .. tostring(starter), 2) end
      local r = call(f.worker, opts.queue.store, opts.queue.name, starter, {
        name = name, concurrency = opts.concurrency, lease = opts.lease, poll = opts.poll,
        backoff = opts.backoff, backoff_max = opts.backoff_max, stop_when_empty = opts.stop_when_empty,
      })
      return setmetatable({name = r}, Worker)
    end

    local periodic_options = {
      queue = true, name = true, every = true, cron = true, tz = true, value = true, priority = true,
      max_attempts = true, timeout = true,
    }

    -- jobs.periodic{queue = q, name = "cleanup", every = seconds | cron = "0 3 * * *", tz = "utc" | "local", value=,
    -- priority=, max_attempts=, timeout=}
    function M.periodic(opts)
      checkopts("jobs.periodic", opts, periodic_options)
      if not isqueue(opts.queue) then
        error("jobs.periodic: option 'queue' must be a queue made by jobs.queue(name, opts)", 2)
      end
      local q = opts.queue
      local r = call(f.periodic, q.store, q.name, q.keep, {
        name = opts.name, every = opts.every, cron = opts.cron, tz = opts.tz, value = opts.value,
        priority = opts.priority,
        max_attempts = opts.max_attempts, timeout = opts.timeout,
      })
      return setmetatable({name = r}, Worker)
    end

    return M
    """#
