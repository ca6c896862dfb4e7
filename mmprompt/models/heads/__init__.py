# Copyright (c) mmprompt contributors. All rights reserved.
