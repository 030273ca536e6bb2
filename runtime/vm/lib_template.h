/*
 * lib_template.h - moonlet.template's C half (lib_template.c).
 */
#ifndef ML_LIB_TEMPLATE_H
#define ML_LIB_TEMPLATE_H

#include <lua.h>

/* Adds core.template_files(dir) to the table on top. */
void ml_lib_template_register(lua_State *L);

#endif
