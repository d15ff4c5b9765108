import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { CreateTokenDto } from './dto/create-token.dto';
import { UpdateTokenDto } from './dto/update-token.dto';
import { Principal } from './principal';
import { TokenService, TokenView } from './token.service';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('v1/tokens')
@Roles('admin')
export class TokenController {
  constructor(private readonly tokens: TokenService) {}

  /** Creates a token; the response is the only place its value ever appears. */
  @Post()
  @HttpCode(201)
  create(@Body() body: CreateTokenDto, @Principal() principal: Principal): Promise<TokenView & { token: string }> {
    return this.tokens.create(body, principal.auditActor);
  }

  @Get()
  async list(): Promise<{ tokens: TokenView[] }> {
    return { tokens: await this.tokens.list() };
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<TokenView> {
    return this.tokens.get(id);
  }

  /** Edits grants, expiry or rate limit. */
  @Patch(':id')
  update(@Param('id') id: string, @Body() body: UpdateTokenDto, @Principal() principal: Principal): Promise<TokenView> {
    return this.tokens.update(id, body, principal.auditActor);
  }

  /** Revokes the token; it stops working on this replica at once and on others within the token cache time. */
  @Delete(':id')
  revoke(@Param('id') id: string, @Principal() principal: Principal): Promise<TokenView> {
    return this.tokens.revoke(id, principal.auditActor);
  }
}
