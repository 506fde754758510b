#include "event.h"
#include "test.h"
TEST_MAIN_BEGIN
int main(void)
{
        TEST_MAIN_END;
}
