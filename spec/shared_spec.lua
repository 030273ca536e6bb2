-- moonlet.shared: get set add incr delete keys stats, TTLs, the method
-- form, argument errors, the app's shared_size, and values that outlive a
-- reload.  With --workers: shared_workers_spec.lua.
local H = require "helpers"

describe("moonlet.shared", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/shared.lua", { env = "APP_SHARED_SIZE=131072" })
  end)
  teardown(function() srv:stop() end)

  -- Runs Lua in the server; returns its results as "type:value" lines.
  local function eval(code)
    local res = H.post(srv, "/eval", code)
    assert.equal(200, res.status)
    return res.body
  end

  before_each(function()
    eval("for _, k in ipairs(shared.keys(0)) do shared.delete(k) end")
  end)

  it("stores strings, integers, floats and booleans", function()
    assert.equal("boolean:true", eval("return shared.set('s', 'hello')"))
    eval("shared.set('i', 42) shared.set('f', 2.5) shared.set('b', false)")
    assert.equal("string:hello\ninteger:42\nfloat:2.5\nboolean:false",
      eval("return shared.get('s'), shared.get('i'), shared.get('f'), "
        .. "shared.get('b')"))
    assert.equal("nil", eval("return shared.get('missing')"))
    eval("shared.set('s', 7)")                      -- replaced, new type
    assert.equal("integer:7", eval("return shared.get('s')"))
    assert.equal("string:a\0b", eval("shared.set('z', 'a\\0b') "
      .. "return shared.get('z')"))
  end)

  it("adds only when absent", function()
    assert.equal("boolean:true", eval("return shared.add('a', 1)"))
    assert.equal("nil\nstring:exists", eval("return shared.add('a', 2)"))
    assert.equal("integer:1", eval("return shared.get('a')"))
  end)

  it("increments numbers, with an initial value for new keys", function()
    eval("shared.set('n', 10)")
    assert.equal("integer:13", eval("return shared.incr('n', 3)"))
    assert.equal("float:13.5", eval("return shared.incr('n', 0.5)"))
    assert.equal("nil\nstring:not found", eval("return shared.incr('x', 1)"))
    assert.equal("integer:101", eval("return shared.incr('x', 1, 100)"))
    assert.equal("integer:102", eval("return shared.incr('x', 1, 100)"))
    eval("shared.set('s', 'text')")
    assert.equal("nil\nstring:not a number",
      eval("return shared.incr('s', 1)"))
    assert.equal("integer:-1", eval("return shared.incr('x', -103)"))
  end)

  it("deletes and lists keys, sorted", function()
    eval("shared.set('b', 1) shared.set('a', 1) shared.set('c', 1)")
    assert.equal("boolean:true", eval("return shared.delete('c')"))
    assert.equal("boolean:true", eval("return shared.delete('c')"))
    assert.equal("string:a,b",
      eval("return table.concat(shared.keys(), ',')"))
    assert.equal("integer:0", eval("shared.delete('a') shared.delete('b') "
      .. "return #shared.keys()"))
  end)

  it("lists at most max keys: 1024 unless told, 0 for all", function()
    eval("for i = 1, 1030 do shared.set(('k%04d'):format(i), i) end")
    assert.equal("integer:1024\ninteger:1030\ninteger:10\nstring:k0001",
      eval("return #shared.keys(), #shared.keys(0), #shared.keys(10), "
        .. "shared.keys(0)[1]"))
    assert.matches("bad argument #1 to 'keys' %(max must be 0",
      eval("return shared.keys(-1)"))
  end)

  it("is as large as the app's shared_size says, and counts", function()
    assert.equal("integer:131072\nboolean:true\ninteger:0",
      eval("local s = shared.stats() return s.size, "
        .. "s.capacity < s.size, s.count"))
    eval("shared.set('a', 1) shared.set('b', 'two')")
    assert.equal("integer:2\nboolean:true",
      eval("local s = shared.stats() return s.count, s.used > 0"))
  end)

  it("works in the method form too", function()
    assert.equal("boolean:true", eval("return shared:set('m', 'v', 10)"))
    assert.equal("string:v", eval("return shared:get('m')"))
    assert.equal("nil\nstring:exists", eval("return shared:add('m', 1)"))
    assert.equal("integer:5", eval("return shared:incr('k', 2, 3)"))
    assert.equal("string:k,m", eval("return table.concat(shared:keys(), ',')"))
    assert.equal("boolean:true", eval("return shared:delete('m')"))
    assert.equal("nil", eval("return moonlet.shared:get('m')"))
  end)

  it("forgets a key once its TTL has passed", function()
    eval("shared.set('t', 'soon', 0.3) shared.add('u', 1, 0.3) "
      .. "shared.set('forever', 1, 0)")
    assert.equal("string:soon\ninteger:1",
      eval("return shared.get('t'), shared.get('u')"))
    assert.equal("integer:2", eval("return shared.incr('u', 1)"))
    H.pause(0.45)
    assert.equal("nil\nnil\ninteger:1", eval("return shared.get('t'), "
      .. "shared.get('u'), shared.get('forever')"))
    assert.equal("string:forever",
      eval("return table.concat(shared.keys(), ',')"))
    assert.equal("boolean:true", eval("return shared.add('t', 'again')"))
    assert.equal("nil\nstring:not found", eval("return shared.incr('u', 1)"))
  end)

  it("raises clear errors for bad arguments", function()
    local function err(code)
      return eval(code):match("^error:(.*)")
    end
    assert.matches("bad argument #2 to 'set' %(a string, number or boolean "
      .. "expected, got table%)", err("shared.set('k', {})"))
    assert.matches("eval:1: bad argument #2 to 'set' %(a string, number or "
      .. "boolean expected, got no value%)", err("shared.set('k')"))
    assert.matches("bad argument #2 to 'add' %(a string, number or boolean "
      .. "expected, got function%)", err("shared:add('k', print)"))
    assert.matches("bad argument #1 to 'get' %(string expected, got no "
      .. "value%)", err("shared.get()"))
    assert.matches("bad argument #1 to 'get' %(string expected, got no "
      .. "value%)", err("shared:get()"))
    assert.matches("bad argument #1 to 'get' %(empty key%)",
      err("shared.get('')"))
    assert.matches("bad argument #2 to 'incr' %(number expected, got "
      .. "string%)", err("shared.incr('k', 'x')"))
    assert.matches("bad argument #3 to 'incr' %(number expected, got "
      .. "boolean%)", err("shared.incr('k', 1, true)"))
    assert.matches("bad argument #3 to 'set' %(ttl must be 0",
      err("shared.set('k', 1, -1)"))
    assert.matches("bad argument #3 to 'set' %(number expected",
      err("shared.set('k', 1, 'x')"))
    assert.equal("integer:0", eval("return #shared.keys()"))
  end)

  it("keeps its values across a reload", function()
    eval("shared.set('kept', 'yes') shared.set('count', 5)")
    local before = H.get(srv, "/gen").body
    local reloads = select(2, srv:log():gsub("reloaded", ""))
    os.execute("kill -HUP " .. srv.pid)
    local deadline = H.now() + 5
    while select(2, srv:log():gsub("reloaded", "")) == reloads
        and H.now() < deadline do
      H.pause(0.02)
    end
    assert.are_not.equal(before, H.get(srv, "/gen").body)
    assert.equal("string:yes\ninteger:6",
      eval("return shared.get('kept'), shared.incr('count', 1)"))
  end)
end)
