--- The notes app of the README (apps/notes), with its own spec, run from
-- here: what a newcomer builds must keep working.
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
assert(loadfile("apps/notes/spec/app_spec.lua", "t", _ENV))()
