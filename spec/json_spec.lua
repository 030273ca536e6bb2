--- moonlet.json: the one JSON module (responses, req:json(), res:json(),
-- moonlet.http bodies), on lua-cjson for decoding and lib_json.c for
-- encoding.
local H = require "helpers"

assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local moonlet = require "moonlet"
local json = moonlet.json

describe("moonlet.json", function()
  it("keeps integers integers and encodes 2^53 exactly", function()
    local v = json.decode('{"id":3,"f":3.5,"l":[1,{"x":-4}]}')
    assert.equal("integer", math.type(v.id))
    assert.equal("float", math.type(v.f))
    assert.equal("integer", math.type(v.l[2].x))
    assert.equal("9007199254740992", json.encode(2^53 | 0))
    assert.equal("9007199254740993", json.encode(9007199254740993))
    assert.equal("0.1", json.encode(0.1))
    assert.equal(1/3, json.decode(json.encode(1/3)))
  end)

  it("has an empty array, null, and no \\/", function()
    assert.equal("[]", json.encode(json.array()))
    assert.equal("[]", json.encode(json.empty_array))
    assert.equal("{}", json.encode({}))
    assert.equal('{"a":[1,2]}', json.encode({ a = json.array{ 1, 2 } }))
    assert.equal("null", json.encode(moonlet.null))
    assert.equal(moonlet.null, json.decode("null"))
    assert.equal(json.null, json.decode('{"a":null}').a)
    assert.equal('"http://x/</y>"', json.encode("http://x/</y>"))
    assert.equal('"\\n\\u0000\\""', json.encode('\n\0"'))
    assert.equal("[1,2,null,4]", json.encode({ 1, 2, nil, 4 }))
    assert.has_error(function() json.empty_array[1] = 1 end)
  end)

  it("names the path of what it cannot encode", function()
    local ok, err = pcall(json.encode, { a = { b = { 1, 2, print } } })
    assert.is_false(ok)
    assert.matches("cannot encode a function at %.a%.b%[3%]", err)
    assert.matches("not UTF%-8 at %.s", select(2, pcall(json.encode,
      { s = "\xff" })))
    assert.matches("NaN", select(2, pcall(json.encode, { n = 0/0 })))
    local t = {}
    t.t = t
    assert.matches("nested too deep", select(2, pcall(json.encode, t)))
    assert.matches("too many holes", select(2, pcall(json.encode,
      { [1] = 1, [100] = 2 })))
  end)

  it("refuses invalid UTF-8, NaN, Infinity and overflow", function()
    for _, text in ipairs { '"\xff"', "NaN", "[Infinity]", "[1e400]",
        '"\\ud800"', "{", "" } do
      local v, err = json.decode(text)
      assert.is_nil(v, text)
      assert.matches("^invalid JSON", err)
    end
  end)

  it("describes an error table by its contents", function()
    assert.equal('{"code":1}', json.describe({ code = 1 }))
    assert.equal("x", json.describe("x"))
  end)
end)

describe("JSON on the wire", function()
  local srv
  setup(function() srv = H.start("spec/apps/json_app.lua") end)
  teardown(function() srv:stop() end)

  local function post(path, body)
    return H.post(srv, path, body, { headers = {
      ["Content-Type"] = "application/json" } })
  end

  it("req:json() gives integers: a route built from an id works", function()
    local res = post("/notes", '{"id":3,"text":"hi"}')
    assert.equal(201, res.status)
    local v = json.decode(res.body)
    assert.same({ url = "/notes/3", id = 3, kind = "integer" }, v)
    assert.same({ id = 3, text = "hi" }, json.decode(
      H.get(srv, "/notes/3").body))
  end)

  it("sends 2^53, an empty array and null exactly, without \\/", function()
    local res = H.get(srv, "/big")
    assert.equal("application/json", res.headers["content-type"])
    assert.matches('"n":9007199254740992', res.body, 1, true)
    assert.matches('"m":-4611686018427387904', res.body, 1, true)
    assert.matches('"empty":[]', res.body, 1, true)
    assert.matches('"none":null', res.body, 1, true)
    assert.matches('"url":"http://x/y"', res.body, 1, true)
  end)

  it("abort with a table sends JSON", function()
    local res = post("/validate", "{}")
    assert.equal(422, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.same({ field = "name", error = "required" }, json.decode(res.body))
    res = H.get(srv, "/notes/99")
    assert.equal(404, res.status)
    assert.same({ error = "no note", id = 99 }, json.decode(res.body))
  end)

  it("answers 400 to a body that is not UTF-8 or holds NaN", function()
    for _, body in ipairs { '{"name":"\xff"}', '{"name":NaN}', "[1e999]" } do
      local res = post("/validate", body)
      assert.equal(400, res.status, body)
      assert.matches("not valid JSON", res.body)
    end
  end)

  it("a table that cannot be sent names the handler", function()
    local res = H.get(srv, "/unsendable")
    assert.equal(500, res.status)
    assert.truthy(H.wait_for_log(srv, "the handler at [^\n]*json_app%.lua:31"
      .. " returned a table that cannot be sent as JSON: cannot encode a "
      .. "function at %.cb"))
  end)

  it("a status returned as a string is called a string", function()
    assert.equal(500, H.get(srv, "/string-status").status)
    assert.truthy(H.wait_for_log(srv, 'got the string "201"'))
  end)

  it("logs an error table by its contents", function()
    assert.equal(500, H.get(srv, "/table-error").status)
    assert.truthy(H.wait_for_log(srv, 'GET /table%-error[^\n]*'
      .. '{"[cw][oh][dy][^\n]*"raised a table"'))
    H.get(srv, "/task-error")
    H.get(srv, "/gc")
    assert.truthy(H.wait_for_log(srv, 'a task failed and nobody waited for '
      .. 'it: [^\n]*"table error"'))
  end)
end)
